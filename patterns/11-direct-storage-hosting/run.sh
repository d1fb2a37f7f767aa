#!/usr/bin/env bash
# Pattern 11, direct storage hosting: the static site in ./site served by S3's website
# endpoint (index document, error document, folder indexes). See README.md.
#
#   ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $AWS_ENDPOINT_URL, else http://localhost:4566.
# --keep leaves the bucket in place so the site can be opened in a browser.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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

BUCKET="p11-site-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
hostport=${ENDPOINT#*://}; hostport=${hostport%%/*}
case "$hostport" in *:*) PORT=${hostport##*:} ;; *) PORT=80 ;; esac
SITE_HOST="$BUCKET.s3-website.localhost:$PORT"
SITE_URL="http://$SITE_HOST"                      # the website endpoint, Host-header form
PATH_URL="$ENDPOINT/_nimbus/website/$BUCKET"      # the same site, path form (no DNS needed)
WORK=$(mktemp -d)
cleanup() {
  if [ "$KEEP" = 1 ]; then
    echo; echo "kept: bucket $BUCKET, site $PATH_URL/ (or $SITE_URL/ where *.localhost resolves)"
    echo "remove with: aws --endpoint-url $ENDPOINT s3 rb s3://$BUCKET --force"
  else
    awsc s3 rb "s3://$BUCKET" --force >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# site FORM PATH -> "STATUS CONTENT-TYPE"; body in $WORK/body, headers in $WORK/headers.
# FORM "host": the request goes to the endpoint with Host: BUCKET.s3-website.localhost:PORT,
# which is what a browser sends to http://BUCKET.s3-website.localhost:PORT/ (curl against
# 127.0.0.1 with that header works without wildcard DNS). FORM "path": /_nimbus/website/BUCKET.
site() {
  local args=(-sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code} %{content_type}')
  : > "$WORK/body"; : > "$WORK/headers"
  # (a transport error is status 000, an observation that fails, not an abort)
  if [ "$1" = host ]; then curl "${args[@]}" -H "Host: $SITE_HOST" "$ENDPOINT$2" || true
  else curl "${args[@]}" "$PATH_URL$2" || true; fi
}
# expect FORM PATH STATUS CONTENT-TYPE-PREFIX [FILE-WHOSE-BYTES-THE-BODY-MUST-BE]
expect() {
  local form=$1 path=$2 want=$3 want_type=$4 file=${5:-} got code ctype
  got=$(site "$form" "$path"); code=${got%% *}; ctype=${got#* }
  local what="GET $path ($form form)"
  if [ "$code" != "$want" ]; then bad "$what -> $code, expected $want: $(head -c 200 "$WORK/body")"; return; fi
  if [ -n "$want_type" ] && [[ "$ctype" != "$want_type"* ]]; then bad "$what -> $code but Content-Type '$ctype', expected $want_type"; return; fi
  if [ -n "$file" ] && ! cmp -s "$file" "$WORK/body"; then bad "$what -> $code $ctype but the body is not ${file#"$HERE"/}: $(head -c 200 "$WORK/body")"; return; fi
  ok "$what -> $code $ctype${file:+, body = ${file#"$HERE"/}}"
}
policy() {  # policy ACTION... -> a bucket policy granting the actions to everyone
  local sts="" a
  for a in "$@"; do
    local res="arn:aws:s3:::$BUCKET/*"; [ "$a" = s3:ListBucket ] && res="arn:aws:s3:::$BUCKET"
    sts="$sts${sts:+,}{\"Sid\":\"Public${a#s3:}\",\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"$a\",\"Resource\":\"$res\"}"
  done
  echo "{\"Version\":\"2012-10-17\",\"Statement\":[$sts]}"
}

echo "endpoint: $ENDPOINT"
echo "bucket: $BUCKET"
echo "website: $SITE_URL/  (path form: $PATH_URL/)"

step "1. a bucket with the site and a website configuration"
awsc s3 mb "s3://$BUCKET" >/dev/null
awsc s3 sync "$HERE/site" "s3://$BUCKET/" --only-show-errors
awsc s3 website "s3://$BUCKET/" --index-document index.html --error-document error.html
ok "uploaded: $(awsc s3 ls "s3://$BUCKET" --recursive | awk '{print $4}' | sort | tr '\n' ' ')"
cfg=$(awsc s3api get-bucket-website --bucket "$BUCKET" --query '[IndexDocument.Suffix,ErrorDocument.Key]' --output text | tr '\t' ' ')
[ "$cfg" = "index.html error.html" ] && ok "website configuration: index $cfg" || bad "website configuration: '$cfg'"

step "2. the website endpoint is anonymous: while the bucket is private it answers 403"
expect host / 403 text/html
expect path / 403 text/html

step "3. Block Public Access off, public s3:GetObject only"
# Real AWS refuses a public bucket policy while Block Public Access (the default on new
# buckets since April 2023) is on; nimbus does the same.
awsc s3api delete-public-access-block --bucket "$BUCKET"
awsc s3api put-bucket-policy --bucket "$BUCKET" --policy "$(policy s3:GetObject)"
ok "policy: Principal \"*\" may s3:GetObject"
for form in host path; do
  expect $form / 200 text/html "$HERE/site/index.html"
  # Without s3:ListBucket S3 will not say whether a key exists: a missing key is 403
  # (AccessDenied), and the error document is served with that status.
  expect $form /no-such-page.html 403 text/html "$HERE/site/error.html"
done

step "4. public s3:GetObject and s3:ListBucket: every observation of the pattern"
awsc s3api put-bucket-policy --bucket "$BUCKET" --policy "$(policy s3:GetObject s3:ListBucket)"
ok "policy: Principal \"*\" may s3:GetObject and s3:ListBucket"
for form in host path; do
  expect $form / 200 text/html "$HERE/site/index.html"
  expect $form /index.html 200 text/html "$HERE/site/index.html"
  expect $form /css/site.css 200 text/css "$HERE/site/css/site.css"
  expect $form /img/logo.svg 200 image/svg+xml "$HERE/site/img/logo.svg"
  expect $form /docs/ 200 text/html "$HERE/site/docs/index.html"
  expect $form /no-such-page.html 404 text/html "$HERE/site/error.html"
  expect $form /no/such/dir/ 404 text/html "$HERE/site/error.html"
done
# A folder without its trailing slash is redirected to it (302 Found, Location /docs/).
got=$(site host /docs); loc=$(grep -i '^location:' "$WORK/headers" | tr -d '\r' | cut -d' ' -f2-)
[ "${got%% *}" = 302 ] && [[ "$loc" == */docs/ ]] && ok "GET /docs (host form) -> 302 Location $loc" \
  || bad "GET /docs (host form) -> ${got%% *} Location '$loc', expected 302 to /docs/"

step "5. the REST endpoint is not the website: / there lists the bucket"
code=$(curl -sS -o "$WORK/body" -w '%{http_code}' "$ENDPOINT/$BUCKET/" || true)
grep -q '<ListBucketResult' "$WORK/body" && ok "GET $ENDPOINT/$BUCKET/ -> $code, a ListBucketResult XML document" \
  || bad "GET $ENDPOINT/$BUCKET/ -> $code: $(head -c 200 "$WORK/body")"

echo
if [ "$FAILED" -gt 0 ]; then echo "pattern 11: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 11: all observations hold"
