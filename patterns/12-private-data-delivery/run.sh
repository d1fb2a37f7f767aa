#!/usr/bin/env bash
# Pattern 12, private data delivery: a private object, a login page (login.py) that hands
# out links to it that expire, checked before and after expiry. See README.md.
#
#   ./run.sh [--endpoint-url URL] [--ttl SECONDS] [--keep]
#
# The endpoint is --endpoint-url, else $AWS_ENDPOINT_URL, else http://localhost:4566.
# --ttl is how long the links live (default 5 s; the script waits it out).
# --keep leaves the bucket in place.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENDPOINT=${AWS_ENDPOINT_URL:-http://localhost:4566}
KEEP=0
TTL=5
while [ $# -gt 0 ]; do
  case "$1" in
    --endpoint-url) ENDPOINT=$2; shift 2 ;;
    --endpoint-url=*) ENDPOINT=${1#*=}; shift ;;
    --ttl) TTL=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
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
# http URL [curl args...] -> prints the status code; body in $WORK/body
# (a transport error is status 000, an observation that fails, not an abort)
http() { local u=$1; shift; : > "$WORK/body"; curl -sS -o "$WORK/body" -w '%{http_code}' "$@" "$u" || true; }
expect_status() {  # expect_status WANT GOT WHAT
  if [ "$2" = "$1" ]; then ok "$3 -> $2"; else bad "$3 -> $2 (expected $1): $(head -c 300 "$WORK/body")"; fi
}
expect_in_body() {  # expect_in_body TEXT WHAT
  if grep -qF -- "$1" "$WORK/body"; then ok "$2"; else bad "$2: '$1' not in $(head -c 300 "$WORK/body")"; fi
}

BUCKET="p12-private-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
KEY="reports/2024-q3.csv"
WORK=$(mktemp -d)
LOGIN_PID=""
cleanup() {
  if [ -n "$LOGIN_PID" ]; then kill "$LOGIN_PID" 2>/dev/null || true; wait "$LOGIN_PID" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then
    echo; echo "kept: bucket $BUCKET; remove with: aws --endpoint-url $ENDPOINT s3 rb s3://$BUCKET --force"
  else
    awsc s3 rb "s3://$BUCKET" --force >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "endpoint: $ENDPOINT"
echo "bucket: $BUCKET"
AUTH=$(curl -s "$ENDPOINT/_nimbus/health" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("auth","?"))' 2>/dev/null || echo "?")
echo "signature checking (nimbus --auth): $AUTH"

step "1. a private object"
printf 'region,revenue\nnorth,1200\nsouth,900\n' > "$WORK/report.csv"
awsc s3 mb "s3://$BUCKET" >/dev/null
awsc s3 cp "$WORK/report.csv" "s3://$BUCKET/$KEY" --only-show-errors
ok "uploaded s3://$BUCKET/$KEY"
code=$(http "$ENDPOINT/$BUCKET/$KEY")
expect_status 403 "$code" "anonymous GET $ENDPOINT/$BUCKET/$KEY"

step "2. the login page"
python3 "$HERE/login.py" serve --endpoint "$ENDPOINT" --bucket "$BUCKET" --key "$KEY" --ttl "$TTL" \
  --port 0 --port-file "$WORK/port" --user alice:wonderland >"$WORK/login.out" 2>"$WORK/login.err" &
LOGIN_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { cat "$WORK/login.err"; echo "login.py did not start" >&2; exit 1; }
LOGIN="http://127.0.0.1:$(cat "$WORK/port")"
ok "$(cat "$WORK/login.out")"
code=$(http "$LOGIN/")
expect_status 200 "$code" "GET $LOGIN/ (the login form)"
code=$(http "$LOGIN/login" --data 'user=alice&password=guess')
expect_status 401 "$code" "POST /login with a wrong password"
code=$(http "$LOGIN/login" --data 'user=alice&password=wonderland')
ISSUED=$(date +%s)
expect_status 200 "$code" "POST /login as alice"
link() { grep -o "id=\"$1\" href=\"[^\"]*\"" "$WORK/page" | sed 's/.*href="//; s/"$//; s/&amp;/\&/g'; }
cp "$WORK/body" "$WORK/page"
LEGACY=$(link legacy); SIGV4=$(link sigv4)
echo "  legacy link: $LEGACY"
echo "  SigV4 link:  $SIGV4"
[[ "$LEGACY" == *AWSAccessKeyId=*Expires=*Signature=* ]] && ok "the legacy link carries AWSAccessKeyId, Expires, Signature" \
  || bad "the legacy link lacks AWSAccessKeyId/Expires/Signature"
[[ "$SIGV4" == *X-Amz-Algorithm=AWS4-HMAC-SHA256*X-Amz-Expires=$TTL* ]] && ok "the SigV4 link carries X-Amz-Algorithm=AWS4-HMAC-SHA256, X-Amz-Expires=$TTL" \
  || bad "the SigV4 link is not a SigV4 presigned URL"
# The signature, recomputed with openssl: base64(HMAC-SHA1(secret, "GET\n\n\n{Expires}\n/{bucket}/{key}")).
q() { python3 -c 'import sys,urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)[sys.argv[2]][0])' "$LEGACY" "$1"; }
EXPIRES=$(q Expires)
mine=$(printf 'GET\n\n\n%s\n/%s/%s' "$EXPIRES" "$BUCKET" "$KEY" | openssl dgst -sha1 -hmac "$AWS_SECRET_ACCESS_KEY" -binary | base64)
[ "$mine" = "$(q Signature)" ] && ok "Signature = base64 HMAC-SHA1 over \"GET\\n\\n\\n$EXPIRES\\n/$BUCKET/$KEY\" (checked with openssl)" \
  || bad "Signature $(q Signature) is not the HMAC-SHA1 openssl computes ($mine)"

step "3. before expiry both links download the object"
for name in LEGACY SIGV4; do
  code=$(http "${!name}")
  expect_status 200 "$code" "GET the $name link"
  cmp -s "$WORK/body" "$WORK/report.csv" && ok "$name link body is the report" || bad "$name link body differs from the report"
done
if [ "$AUTH" = enforce ]; then
  # With signatures verified, a link edited to point elsewhere is refused.
  code=$(http "${LEGACY/2024-q3.csv/2024-q4.csv}")
  expect_status 403 "$code" "GET the legacy link edited to another key"
  expect_in_body SignatureDoesNotMatch "edited link -> SignatureDoesNotMatch"
else
  echo "  (nimbus runs with --auth $AUTH: signatures are not verified, so an edited link is not tried;"
  echo "   start nimbus with --auth enforce to see it refused with SignatureDoesNotMatch)"
fi

step "4. after expiry both links are refused"
wait_s=$(( ISSUED + TTL + 2 - $(date +%s) ))
[ "$wait_s" -gt 0 ] && { echo "  waiting ${wait_s}s for the links to expire..."; sleep "$wait_s"; }
for name in LEGACY SIGV4; do
  code=$(http "${!name}")
  expect_status 403 "$code" "GET the $name link after expiry"
  expect_in_body "<Code>AccessDenied</Code>" "$name link: AccessDenied"
  expect_in_body "<Message>Request has expired</Message>" "$name link: Request has expired"
done
code=$(http "$LOGIN/login" --data 'user=alice&password=wonderland')
cp "$WORK/body" "$WORK/page"
code=$(http "$(link legacy)")
expect_status 200 "$code" "logging in again hands out a fresh link that works"

echo
if [ "$FAILED" -gt 0 ]; then echo "pattern 12: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 12: all observations hold"
