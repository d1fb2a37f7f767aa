#!/usr/bin/env bash
# Pattern 18, URL rewriting: images live in a bucket, not on the web server. Uploads go
# to S3; the web tier on an instance answers every image URL with a 301 to the bucket's
# website endpoint, so the bytes never pass through it. Old image paths are rewritten by
# the bucket itself: its website routing rules (KeyPrefixEquals -> ReplaceKeyPrefixWith,
# HttpRedirectCode) answer them with S3's own 301/302. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). The bucket's
# website endpoint is http://BUCKET.s3-website-REGION.localhost:PORT (curl and browsers
# resolve *.localhost to this machine). Everything made is listed as "made:" and removed
# at the end unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p18

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
BUCKET="$RUN-uploads"
REGION=$AWS_DEFAULT_REGION
hostport=${ENDPOINT#*://}; hostport=${hostport%%/*}
case $hostport in *:*) EHOST=${hostport%:*}; PORT=${hostport##*:} ;; *) EHOST=$hostport; PORT=80 ;; esac
# The bucket's website endpoint, named as S3 names it (BUCKET.s3-website-REGION.amazonaws.com
# there, .localhost here). curl resolves *.localhost to 127.0.0.1 by itself; --connect-to
# takes it to the endpoint's host when nimbus is elsewhere.
SITE_NAME="$BUCKET.s3-website-$REGION.localhost"
WEBSITE="http://$SITE_NAME:$PORT"
c() { curl -sS --noproxy '*' -m 5 --connect-to "$SITE_NAME:$PORT:$EHOST:$PORT" "$@"; }
sha() { sha256sum | cut -c1-64; }
# status and Location of one request, no redirect followed: "301 http://..."
head_of() { c -o /dev/null -w '%{http_code} %{redirect_url}' "$1" 2>/dev/null || echo "000"; }
# follows every redirect like a browser: "STATUS REDIRECTS CONTENT_TYPE FINAL_URL", body in $2
follow() { c -L --max-redirs 5 -o "$2" -w '%{http_code} %{num_redirects} %{content_type} %{url_effective}' "$1" 2>/dev/null || echo "000"; }
png() {  # png FILE SEED: writes a small real PNG (16x16, colours from SEED)
  python3 - "$1" "$2" <<'PY'
import random, struct, sys, zlib
rnd = random.Random(sys.argv[2])
rows = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(16 * 3)) for _ in range(16))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
}

step "1. the upload bucket, served as a website with redirect rules for old paths"
awsc s3 mb "s3://$BUCKET" >/dev/null; made bucket "$BUCKET"
echo "bucket: $BUCKET"
echo "website endpoint: $WEBSITE"
# Website endpoints are anonymous: the objects are public through a bucket policy
# (Block Public Access goes first, as on AWS since 2023).
awsc s3api delete-public-access-block --bucket "$BUCKET"
awsc s3api put-bucket-policy --bucket "$BUCKET" --policy "{\"Version\": \"2012-10-17\", \"Statement\": [
  {\"Sid\": \"PublicRead\", \"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"s3:GetObject\",
   \"Resource\": \"arn:aws:s3:::$BUCKET/*\"}]}"
# photos/ was the old folder (moved for good: 301); drafts/ is sent to images/ for now (302).
cat > "$WORK/website.json" <<'JSON'
{"IndexDocument": {"Suffix": "index.html"},
 "RoutingRules": [
   {"Condition": {"KeyPrefixEquals": "photos/"},
    "Redirect": {"ReplaceKeyPrefixWith": "images/", "HttpRedirectCode": "301"}},
   {"Condition": {"KeyPrefixEquals": "drafts/"},
    "Redirect": {"ReplaceKeyPrefixWith": "images/", "HttpRedirectCode": "302"}}]}
JSON
awsc s3api put-bucket-website --bucket "$BUCKET" --website-configuration "file://$WORK/website.json"
rules=$(q s3api get-bucket-website --bucket "$BUCKET" \
  --query 'RoutingRules[].[Condition.KeyPrefixEquals,Redirect.ReplaceKeyPrefixWith,Redirect.HttpRedirectCode]' | tr '\t\n' ' ,')
[ "$rules" = "photos/ images/ 301,drafts/ images/ 302," ] \
  && ok "routing rules: photos/ -> images/ (301), drafts/ -> images/ (302)" \
  || bad "GetBucketWebsite routing rules: $rules"

step "2. an upload goes straight to the bucket"
png "$WORK/cat.png" "$RUN-cat"
CAT_SHA=$(sha < "$WORK/cat.png")
awsc s3 cp "$WORK/cat.png" "s3://$BUCKET/images/cat.png" --content-type image/png --only-show-errors
echo "uploaded: images/cat.png $(stat -c %s "$WORK/cat.png") bytes sha256 $CAT_SHA"
r=$(q s3api head-object --bucket "$BUCKET" --key images/cat.png --query '[ContentType,ContentLength]' | tr '\t' ' ')
[ "$r" = "image/png $(stat -c %s "$WORK/cat.png")" ] && ok "s3://$BUCKET/images/cat.png: $r" || bad "head-object images/cat.png: $r"

step "3. the web tier: pages from the instance, image URLs redirected to the bucket"
SG=$(new_group web "pattern 18: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
{ echo '#!/bin/bash'; echo "WEBSITE=$WEBSITE"; cat <<'UD'
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /opt/p18
cat > /opt/p18/web.py <<'PY'
import http.server, re, sys
WEBSITE, IID = sys.argv[1], sys.argv[2]
IMAGE = re.compile(r"^/(images|photos|drafts)/|\.(png|jpe?g|gif|webp|svg)$", re.I)
PAGE = (f"<html><body><h1>gallery</h1><p>served by {IID}</p>"
        '<img src="/images/cat.png"><img src="/photos/dog.png"></body></html>\n').encode()
class Web(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        self.send_header("X-Served-By", IID)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if IMAGE.search(path):   # the rewrite: same path, on the bucket's website endpoint
            self.answer(301, headers=[("Location", WEBSITE + self.path)])
        elif path in ("/", "/index.html"):
            self.answer(200, PAGE, [("Content-Type", "text/html")])
        else:
            self.answer(404, b"not found\n", [("Content-Type", "text/plain")])
    do_HEAD = do_GET
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Web).serve_forever()
PY
nohup python3 /opt/p18/web.py "$WEBSITE" "$IID" >/dev/null 2>&1 &
echo "web: serving on 80, images at $WEBSITE"
UD
} > "$WORK/web.sh"
out=$(launch web "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/web.sh")
read -r WEB_ID WEB_IP <<<"$out"; made instance "$WEB_ID"
echo "web instance: $WEB_ID $WEB_IP"
if page=$(wait_get "http://$WEB_IP/" 40 "served by $WEB_ID"); then
  ok "http://$WEB_IP/ is the web tier's own page (served by $WEB_ID)"
else
  bad "the web tier does not answer at http://$WEB_IP/ (${page:-no answer})"
  q ec2 get-console-output --instance-id "$WEB_ID" --query Output | tail -n 20 >&2 || true
fi

step "4. an image URL, through the web tier"
r=$(head_of "http://$WEB_IP/images/cat.png")
[ "$r" = "301 $WEBSITE/images/cat.png" ] && ok "web tier: GET /images/cat.png -> $r" \
  || bad "web tier: GET /images/cat.png -> $r (expected 301 $WEBSITE/images/cat.png)"
r=$(follow "http://$WEB_IP/images/cat.png" "$WORK/got.png")
got=$(sha < "$WORK/got.png" 2>/dev/null || true)
if [ "$r" = "200 1 image/png $WEBSITE/images/cat.png" ] && [ "$got" = "$CAT_SHA" ]; then
  ok "curl -L http://$WEB_IP/images/cat.png: 1 redirect, ends at $WEBSITE/images/cat.png, 200 image/png, sha256 $got (the uploaded bytes)"
else
  bad "curl -L http://$WEB_IP/images/cat.png: $r, sha256 ${got:-none} (expected 200 1 image/png $WEBSITE/images/cat.png, $CAT_SHA)"
fi

step "5. old paths: the bucket's routing rules answer as S3"
for pair in "photos 301" "drafts 302"; do
  read -r prefix want <<<"$pair"
  rm -f "$WORK/rule.body" "$WORK/rule.head"
  r=$(c -o "$WORK/rule.body" -D "$WORK/rule.head" -w '%{http_code} %{redirect_url}' "$WEBSITE/$prefix/cat.png" 2>/dev/null || echo 000)
  len=$(stat -c %s "$WORK/rule.body" 2>/dev/null || echo '?')
  if [ "$r" = "$want $WEBSITE/images/cat.png" ] && [ "$len" = 0 ] && grep -qi '^x-amz-request-id: ' "$WORK/rule.head"; then
    ok "website endpoint: GET /$prefix/cat.png -> $r (empty body, x-amz-request-id)"
  else
    bad "website endpoint: GET /$prefix/cat.png -> $r, body $len bytes (expected $want $WEBSITE/images/cat.png)"
  fi
done
r=$(follow "http://$WEB_IP/photos/cat.png" "$WORK/old.png")
got=$(sha < "$WORK/old.png" 2>/dev/null || true)
if [ "$r" = "200 2 image/png $WEBSITE/images/cat.png" ] && [ "$got" = "$CAT_SHA" ]; then
  ok "curl -L http://$WEB_IP/photos/cat.png: 2 redirects (web tier 301, bucket rule 301), ends at the object's bytes"
else
  bad "curl -L http://$WEB_IP/photos/cat.png: $r, sha256 ${got:-none} (expected 200 2 image/png $WEBSITE/images/cat.png)"
fi
r=$(head_of "$WEBSITE/images/missing.png")
case $r in "403 ") ok "website endpoint: a missing image -> 403 (S3 hides missing keys without s3:ListBucket)" ;;
  *) bad "website endpoint: GET /images/missing.png -> $r (expected 403)" ;; esac

step "6. a new upload is served at once, the instance untouched"
png "$WORK/dog.png" "$RUN-dog"
DOG_SHA=$(sha < "$WORK/dog.png")
awsc s3 cp "$WORK/dog.png" "s3://$BUCKET/images/dog.png" --content-type image/png --only-show-errors
echo "uploaded: images/dog.png sha256 $DOG_SHA"
r=$(follow "http://$WEB_IP/photos/dog.png" "$WORK/dog.got")
got=$(sha < "$WORK/dog.got" 2>/dev/null || true)
if [ "$r" = "200 2 image/png $WEBSITE/images/dog.png" ] && [ "$got" = "$DOG_SHA" ]; then
  ok "curl -L http://$WEB_IP/photos/dog.png (the page's link): the new upload's bytes"
else
  bad "curl -L http://$WEB_IP/photos/dog.png: $r, sha256 ${got:-none} (expected $DOG_SHA)"
fi

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 18: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 18: all observations hold"
