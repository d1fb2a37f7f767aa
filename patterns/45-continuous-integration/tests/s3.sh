#!/usr/bin/env bash
# S3: a bucket, an object written and read back byte for byte, a listing, a delete.
# Run by ../ci.sh with AWS_ENDPOINT_URL and test keys set; RUN names what it makes,
# SCRATCH is a directory for its files. Any failing command fails the test.
set -euo pipefail
# The endpoint as a flag: the aws CLI v1 ignores AWS_ENDPOINT_URL for some services (SQS
# in us-east-1 goes to queue.amazonaws.com); v2 and the SDKs honour it.
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
bucket=$RUN-artifacts
aws s3 mb "s3://$bucket" >/dev/null
head -c 300000 /dev/urandom > "$SCRATCH/build.bin"
aws s3 cp "$SCRATCH/build.bin" "s3://$bucket/builds/1/build.bin" --only-show-errors
aws s3 cp "s3://$bucket/builds/1/build.bin" "$SCRATCH/back.bin" --only-show-errors
cmp "$SCRATCH/build.bin" "$SCRATCH/back.bin"
listed=$(aws s3api list-objects-v2 --bucket "$bucket" --prefix builds/ --query 'Contents[].[Key,Size]' --output text)
[ "$listed" = "$(printf 'builds/1/build.bin\t300000')" ] || { echo "listing: $listed"; exit 1; }
aws s3 rm "s3://$bucket/builds/1/build.bin" --only-show-errors
aws s3 rb "s3://$bucket" >/dev/null
echo "s3://$bucket: 300000 bytes written and read back equal, listed, removed"
