#!/usr/bin/env bash
# Pattern 10, high-availability storage: a zip in a bucket, made public for reading by a
# bucket policy, and a web page that links to it. See README.md.
#
#   ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $AWS_ENDPOINT_URL, else http://localhost:4566.
# --keep leaves the bucket (and its page) in place so the link can be opened in a browser.
set -euo pipefail

ENDPOINT=${AWS_ENDPOINT_URL:-http://localhost:4566}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --endpoint-url) ENDPOINT=$2; shift 2 ;;
    --endpoint-url=*) ENDPOINT=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
ENDPOINT=${ENDPOINT%/}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}

awsc() { aws --endpoint-url "$ENDPOINT" "$@"; }
FAILED=0
ok()   { printf '  ok    %s\n' "$*"; }
bad()  { printf '  FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }
step() { printf '\n== %s\n' "$*"; }
# http METHOD URL [curl args...] -> prints the status code; body in $WORK/body
# (a transport error is status 000, an observation that fails, not an abort)
http() { local m=$1 u=$2; shift 2; : > "$WORK/body"; curl -sS -X "$m" -o "$WORK/body" -w '%{http_code}' "$@" "$u" || true; }
expect_status() {  # expect_status WANT GOT WHAT
  if [ "$2" = "$1" ]; then ok "$3 -> $2"; else bad "$3 -> $2 (expected $1): $(head -c 300 "$WORK/body")"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

BUCKET="p10-ha-storage-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
KEY="downloads/nimbus-demo.zip"
OBJECT_URL="$ENDPOINT/$BUCKET/$KEY"
PAGE_URL="$ENDPOINT/$BUCKET/index.html"
WORK=$(mktemp -d)
cleanup() {
  if [ "$KEEP" = 1 ]; then
    echo; echo "kept: bucket $BUCKET (page $PAGE_URL); remove with: aws --endpoint-url $ENDPOINT s3 rb s3://$BUCKET --force"
  else
    awsc s3 rb "s3://$BUCKET" --force >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "endpoint: $ENDPOINT"
echo "bucket: $BUCKET"

step "1. upload a zip"
mkdir -p "$WORK/demo"
printf 'nimbus pattern 10: high-availability storage\n' > "$WORK/demo/README.txt"
head -c 20000 /dev/urandom | base64 > "$WORK/demo/data.txt"
if command -v zip >/dev/null 2>&1; then
  (cd "$WORK" && zip -qr demo.zip demo)
else
  (cd "$WORK" && python3 -m zipfile -c demo.zip demo)
fi
awsc s3 mb "s3://$BUCKET" >/dev/null
awsc s3 cp "$WORK/demo.zip" "s3://$BUCKET/$KEY" --only-show-errors
ok "uploaded $(wc -c < "$WORK/demo.zip") bytes to s3://$BUCKET/$KEY"
ctype=$(awsc s3api head-object --bucket "$BUCKET" --key "$KEY" --query ContentType --output text)
[ "$ctype" = "application/zip" ] && ok "stored Content-Type $ctype" || bad "stored Content-Type $ctype (expected application/zip)"

step "2. a new bucket is private: an anonymous GET is refused"
code=$(http GET "$OBJECT_URL")
expect_status 403 "$code" "anonymous GET $OBJECT_URL"
grep -q '<Code>AccessDenied</Code>' "$WORK/body" && ok "error code AccessDenied" || bad "no AccessDenied in $(head -c 300 "$WORK/body")"

step "3. Block Public Access (on by default since April 2023) refuses a public policy"
POLICY=$(cat <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::$BUCKET/*"}]}
JSON
)
echo "  Block Public Access on the new bucket: $(awsc s3api get-public-access-block --bucket "$BUCKET" \
  --query 'PublicAccessBlockConfiguration.[BlockPublicAcls,IgnorePublicAcls,BlockPublicPolicy,RestrictPublicBuckets]' --output text | tr '\t' ' ')"
if out=$(awsc s3api put-bucket-policy --bucket "$BUCKET" --policy "$POLICY" 2>&1); then
  bad "put-bucket-policy succeeded while BlockPublicPolicy is on"
elif grep -q AccessDenied <<<"$out"; then
  ok "put-bucket-policy refused: $(grep -o 'AccessDenied.*' <<<"$out" | head -c 160)"
else
  bad "put-bucket-policy failed differently: $out"
fi

step "4. remove Block Public Access, grant s3:GetObject to Principal \"*\""
awsc s3api delete-public-access-block --bucket "$BUCKET"
awsc s3api put-bucket-policy --bucket "$BUCKET" --policy "$POLICY"
ok "bucket policy in place: $(awsc s3api get-bucket-policy --bucket "$BUCKET" --query Policy --output text | tr -d '\n ' | head -c 200)"

step "5. the same anonymous GET now succeeds, and nothing else became public"
code=$(http GET "$OBJECT_URL")
expect_status 200 "$code" "anonymous GET $OBJECT_URL"
[ "$code" = 200 ] && cp "$WORK/body" "$WORK/downloaded.zip"
if [ -f "$WORK/downloaded.zip" ] && [ "$(sha "$WORK/downloaded.zip")" = "$(sha "$WORK/demo.zip")" ]; then
  ok "downloaded bytes are the zip (sha256 $(sha "$WORK/demo.zip" | head -c 16)...)"
else
  bad "downloaded bytes differ from the uploaded zip"
fi
code=$(http PUT "$ENDPOINT/$BUCKET/downloads/evil.zip" --data-binary 'x' -H 'Content-Type: application/zip')
expect_status 403 "$code" "anonymous PUT (the policy grants reading only)"
code=$(http GET "$ENDPOINT/$BUCKET?list-type=2")
expect_status 403 "$code" "anonymous ListObjectsV2 (no s3:ListBucket granted)"

step "6. a web page links to the object"
# On the catalogue's setup this page is served by a web server on an EC2 instance.
# nimbus has no EC2 yet, so the page is written locally and also put into the bucket.
cat > "$WORK/index.html" <<HTML
<!doctype html>
<html><head><meta charset="utf-8"><title>Downloads</title></head>
<body>
<h1>Downloads</h1>
<p><a id="download" href="$OBJECT_URL">nimbus-demo.zip</a> ($(wc -c < "$WORK/demo.zip") bytes),
served straight from S3 bucket $BUCKET.</p>
</body></html>
HTML
awsc s3 cp "$WORK/index.html" "s3://$BUCKET/index.html" --content-type "text/html; charset=utf-8" --only-show-errors
code=$(http GET "$PAGE_URL")
expect_status 200 "$code" "anonymous GET of the page $PAGE_URL"
href=$(grep -o 'href="[^"]*"' "$WORK/body" | head -n1 | sed 's/^href="//; s/"$//')
[ "$href" = "$OBJECT_URL" ] && ok "the page links to $href" || bad "the page links to '$href', expected $OBJECT_URL"
code=$(http GET "$href")
expect_status 200 "$code" "following the link"
[ "$code" = 200 ] && [ "$(sha "$WORK/body")" = "$(sha "$WORK/demo.zip")" ] && ok "the link downloads the zip" || bad "the link does not download the zip"

echo
if [ "$FAILED" -gt 0 ]; then echo "pattern 10: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 10: all observations hold"
