#!/usr/bin/env bash
# Pattern 34, web storage archive: logrotate rotates and compresses a log, its postrotate
# runs archive.sh (`aws s3 sync --exclude "*" --include "*.gz"`), and only the compressed
# rotations land in the bucket. See README.md.
#
#   ./run.sh [--endpoint-url URL] [--rounds N] [--simulate] [--keep]
#
# The endpoint is --endpoint-url, else $AWS_ENDPOINT_URL, else http://localhost:4566.
# Uses /usr/sbin/logrotate (or logrotate on PATH) when installed; --simulate, or no
# logrotate, does the same steps in the same order with mv + gzip instead.
# --rounds is how many rotations to run (default 3); --keep leaves the bucket.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENDPOINT=${AWS_ENDPOINT_URL:-http://localhost:4566}
KEEP=0
ROUNDS=3
SIMULATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --endpoint-url) ENDPOINT=$2; shift 2 ;;
    --endpoint-url=*) ENDPOINT=${1#*=}; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --simulate) SIMULATE=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
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

LOGROTATE=""
if [ "$SIMULATE" = 0 ]; then
  if [ -x /usr/sbin/logrotate ]; then LOGROTATE=/usr/sbin/logrotate
  elif command -v logrotate >/dev/null 2>&1; then LOGROTATE=$(command -v logrotate); fi
fi

BUCKET="p34-log-archive-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
HOST=${HOSTNAME:-web1}
DEST="s3://$BUCKET/$HOST/app/"
WORK=$(mktemp -d)
LOGDIR="$WORK/log/app"
cleanup() {
  if [ "$KEEP" = 1 ]; then
    echo; echo "kept: bucket $BUCKET; remove with: aws --endpoint-url $ENDPOINT s3 rb s3://$BUCKET --force"
  else
    awsc s3 rb "s3://$BUCKET" --force >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

bucket_keys() { awsc s3api list-objects-v2 --bucket "$BUCKET" --query 'Contents[].Key' --output text | tr '\t' '\n' | grep -v '^None$' | sed "s|^$HOST/app/||" | sort || true; }
local_files() { (cd "$LOGDIR" && ls -1 | sort); }

echo "endpoint: $ENDPOINT"
echo "bucket: $BUCKET"
echo "archive destination: $DEST"
awsc s3 mb "s3://$BUCKET" >/dev/null
mkdir -p "$LOGDIR"
# A file in the same directory that is not a rotation: the sync must leave it alone.
echo "started $(date -u +%FT%TZ)" > "$LOGDIR/error.log"

if [ -n "$LOGROTATE" ]; then
  echo "rotation: $LOGROTATE ($("$LOGROTATE" --version 2>&1 | head -n1)), state file and config in $WORK"
  cat > "$WORK/logrotate.conf" <<CONF
"$LOGDIR/app.log" {
    size 1
    rotate 10
    compress
    dateext
    dateformat -%Y%m%d-%s
    create 0644
    missingok
    notifempty
    postrotate
        "$HERE/archive.sh" "$LOGDIR" "$DEST" "$ENDPOINT"
    endscript
}
CONF
  sed 's/^/    /' "$WORK/logrotate.conf"
else
  why="no logrotate installed"; [ "$SIMULATE" = 1 ] && why="--simulate given"
  echo "rotation: SIMULATED ($why): mv to app.log-DATE, create a new app.log,"
  echo "          postrotate (archive.sh), then gzip - the order logrotate itself uses"
fi

rotate() {
  if [ -n "$LOGROTATE" ]; then
    "$LOGROTATE" -s "$WORK/logrotate.state" "$WORK/logrotate.conf" >"$WORK/rotate.out" 2>&1 \
      || { cat "$WORK/rotate.out"; bad "logrotate failed"; return; }
  else
    local rotated="$LOGDIR/app.log-$(date +%Y%m%d-%s)"
    mv "$LOGDIR/app.log" "$rotated"
    : > "$LOGDIR/app.log"; chmod 0644 "$LOGDIR/app.log"                 # create 0644
    "$HERE/archive.sh" "$LOGDIR" "$DEST" "$ENDPOINT" >"$WORK/rotate.out" 2>&1 \
      || { cat "$WORK/rotate.out"; bad "archive.sh failed"; return; }  # postrotate
    gzip "$rotated"                                                      # compress
  fi
  sed 's/^/    postrotate: /' "$WORK/rotate.out"
}

for round in $(seq "$ROUNDS"); do
  step "rotation $round of $ROUNDS"
  [ "$round" -gt 1 ] && sleep 1   # dateext names carry the second
  for n in $(seq 50); do echo "$(date -u +%FT%TZ) round $round request $n GET /index.html 200" >> "$LOGDIR/app.log"; done
  echo "round $round: something went wrong once" >> "$LOGDIR/error.log"
  rotate
  echo "  log directory: $(local_files | tr '\n' ' ')"
  keys=$(bucket_keys)
  echo "  bucket:        $(tr '\n' ' ' <<<"$keys")"
  gz_local=$(local_files | grep '\.gz$' || true)
  n_keys=$(grep -c . <<<"$keys" || true)
  if [ -n "$keys" ] && grep -qv '\.gz$' <<<"$keys"; then bad "non-compressed files in the bucket: $(grep -v '\.gz$' <<<"$keys" | tr '\n' ' ')"
  else ok "every object in the bucket is a .gz rotation ($n_keys objects)"; fi
  missing=$(comm -23 <(echo "$keys" | grep . || true) <(echo "$gz_local" | grep . || true))
  [ -z "$missing" ] && ok "each object is a compressed rotation in the log directory" || bad "objects not in the log directory: $missing"
  # postrotate runs before logrotate compresses the file it just rotated, so that file
  # goes up with the next rotation: after rotation N the bucket holds N-1 archives.
  [ "$n_keys" = $((round - 1)) ] && ok "$((round - 1)) archive(s) uploaded; the rotation just made (still uncompressed during postrotate) waits for the next run" \
    || bad "$n_keys archive(s) in the bucket, expected $((round - 1))"
  for f in app.log error.log; do
    grep -qx "$f" <<<"$keys" && bad "$f was uploaded" || true
  done
done

step "the next run of archive.sh (e.g. the next rotation) catches up"
"$HERE/archive.sh" "$LOGDIR" "$DEST" "$ENDPOINT" | sed 's/^/    archive.sh: /'
keys=$(bucket_keys); gz_local=$(local_files | grep '\.gz$' || true)
echo "  bucket:        $(tr '\n' ' ' <<<"$keys")"
[ "$keys" = "$gz_local" ] && ok "the bucket holds exactly the $(grep -c . <<<"$keys") compressed rotations" \
  || bad "bucket ($(tr '\n' ' ' <<<"$keys")) != compressed rotations ($(tr '\n' ' ' <<<"$gz_local"))"
grep -qx "app.log" <<<"$keys" || grep -qx "error.log" <<<"$keys" && bad "an uncompressed log was uploaded" \
  || ok "app.log and error.log stayed local"
first=$(head -n1 <<<"$keys")
if [ -n "$first" ]; then
  awsc s3 cp "s3://$BUCKET/$HOST/app/$first" "$WORK/first.gz" --only-show-errors
  lines=$(gzip -dc "$WORK/first.gz" | grep -c 'round 1 request' || true)
  [ "$lines" = 50 ] && ok "s3://$BUCKET/$HOST/app/$first gunzips to the 50 lines of round 1" \
    || bad "$first holds $lines round-1 lines, expected 50"
fi

echo
if [ "$FAILED" -gt 0 ]; then echo "pattern 34: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 34: all observations hold"
