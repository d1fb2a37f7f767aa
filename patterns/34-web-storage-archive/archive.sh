#!/usr/bin/env bash
# The postrotate script of pattern 34: copy the compressed rotations of LOG_DIR to S3.
#
#   archive.sh LOG_DIR s3://BUCKET/PREFIX/ [ENDPOINT_URL]
#
# Only *.gz files are sent: the live log, the rotation logrotate has just renamed (it is
# compressed after postrotate returns) and any other file in the directory stay local.
# `aws s3 sync` sends only what the bucket does not have yet, so each run uploads just the
# new archives. ENDPOINT_URL (or $AWS_ENDPOINT_URL) points the CLI at nimbus; leave both
# unset for real S3.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
dir=$1 dest=$2 endpoint=${3:-${AWS_ENDPOINT_URL:-}}
args=()
[ -n "$endpoint" ] && args=(--endpoint-url "$endpoint")
aws ${args[@]+"${args[@]}"} s3 sync "$dir" "$dest" --exclude "*" --include "*.gz" --no-progress
