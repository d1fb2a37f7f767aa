#!/usr/bin/env bash
# Pattern 30, bootstrap: instances set themselves up at boot from a bucket. The site lives
# in S3; the instance gets an instance profile (IAM role) and generic user data that
# fetches the site with `aws s3 cp` (credentials from the metadata service, none in the
# user data) and serves it. Change the object, launch again: the new instance serves the
# new page, with no new image and no change to the user data. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Inside, the
# instances use the same `aws` CLI as this script (the host's / is their lower layer).
# Everything made is listed as "made:" and removed at the end unless --keep. Exits
# non-zero if an observation fails.
PATTERN_ID=p30

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
AWS_DIR=$(dirname "$(command -v aws)")
BUCKET="$RUN-site"
ROLE="$RUN-web"
PROFILE="$RUN-web"

step "1. the site in a bucket"
awsc s3 mb "s3://$BUCKET" >/dev/null; made bucket "$BUCKET"
echo "bucket: $BUCKET"
printf '<h1>%s</h1><p>version 1</p>\n' "$RUN" > "$WORK/index.html"
awsc s3 cp "$WORK/index.html" "s3://$BUCKET/site/index.html" --content-type text/html --only-show-errors
ok "uploaded s3://$BUCKET/site/index.html: $(cat "$WORK/index.html")"

step "2. a role the instances may use, through an instance profile"
cat > "$WORK/trust.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
cat > "$WORK/read-site.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::$BUCKET/site/*"}]}
JSON
awsc iam create-role --role-name "$ROLE" --assume-role-policy-document "file://$WORK/trust.json" >/dev/null; made role "$ROLE"
if err=$(awsc iam put-role-policy --role-name "$ROLE" --policy-name read-site \
    --policy-document "file://$WORK/read-site.json" 2>&1); then
  POLICY="s3:GetObject on arn:aws:s3:::$BUCKET/site/*"
elif grep -q InvalidAction <<<"$err"; then
  # nimbus's IAM has roles and instance profiles but no role policies yet (and does not
  # evaluate identity policies); on AWS the role needs this policy to read the site.
  printf '  gap   nimbus does not implement PutRolePolicy: %s\n' "$(tr -d '\n' <<<"$err")"
  POLICY="no policy: PutRolePolicy is not implemented by nimbus"
else
  echo "$err" >&2; exit 1
fi
awsc iam create-instance-profile --instance-profile-name "$PROFILE" >/dev/null; made instance-profile "$PROFILE"
awsc iam add-role-to-instance-profile --instance-profile-name "$PROFILE" --role-name "$ROLE"
ok "role $ROLE ($POLICY) in instance profile $PROFILE"

step "3. launch: the user data fetches the site and serves it"
SG=$(new_group web "pattern 30: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
# No keys, no endpoint in here: the aws CLI gets the role's credentials from the metadata
# service (and, on nimbus, its endpoint from the instance's ~/.aws/config).
{ echo '#!/bin/bash'; echo "export PATH=$AWS_DIR:\$PATH"; echo "SITE=s3://$BUCKET/site/"; cat <<'UD'
mkdir -p /srv/www
aws s3 cp --recursive "$SITE" /srv/www/ --only-show-errors
echo "bootstrap: fetched $SITE as $(aws sts get-caller-identity --query Arn --output text)"
nohup python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &
UD
} > "$WORK/bootstrap.sh"
out=$(launch web-1 "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" \
  --iam-instance-profile "Name=$PROFILE" --user-data "file://$WORK/bootstrap.sh")
read -r W1_ID W1_IP <<<"$out"; made instance "$W1_ID"
echo "first instance: $W1_ID $W1_IP"
if page=$(wait_get "http://$W1_IP/index.html" 40 "version 1"); then
  ok "$W1_ID serves the page from the bucket: $page"
else
  bad "$W1_ID does not serve version 1 at http://$W1_IP/index.html (${page:-no answer})"
  q ec2 get-console-output --instance-id "$W1_ID" --query Output | tail -n 20 >&2 || true
fi
if out=$(wait_console "$W1_ID" 20 "bootstrap: fetched"); then
  line=$(grep -o 'bootstrap: fetched .*' <<<"$out" | tr -d '\r')
  case $line in
    *":assumed-role/$ROLE/$W1_ID") ok "console: $line" ;;
    *) bad "console: $line (expected the role's session named after the instance)" ;;
  esac
else
  bad "no bootstrap line on $W1_ID's console"
fi
grep -q 'AWS_SECRET\|aws_secret\|AKIA' "$WORK/bootstrap.sh" && bad "the user data holds credentials" \
  || ok "the user data holds no credentials"

step "4. change the page in the bucket, launch again"
printf '<h1>%s</h1><p>version 2</p>\n' "$RUN" > "$WORK/index.html"
awsc s3 cp "$WORK/index.html" "s3://$BUCKET/site/index.html" --content-type text/html --only-show-errors
ok "uploaded version 2"
page=$(get "http://$W1_IP/index.html" || true)
case $page in *"version 1"*) ok "the running instance still serves what it fetched at boot: version 1" ;;
  *) bad "the running instance serves '$page'" ;; esac
out=$(launch web-2 "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" \
  --iam-instance-profile "Name=$PROFILE" --user-data "file://$WORK/bootstrap.sh")
read -r W2_ID W2_IP <<<"$out"; made instance "$W2_ID"
echo "second instance: $W2_ID $W2_IP"
awsc ec2 terminate-instances --instance-ids "$W1_ID" >/dev/null
say "terminated the first instance $W1_ID"
if page=$(wait_get "http://$W2_IP/index.html" 40 "version 2"); then
  ok "$W2_ID, launched with the same user data, serves the new page: $page"
else
  bad "$W2_ID does not serve version 2 at http://$W2_IP/index.html (${page:-no answer})"
  q ec2 get-console-output --instance-id "$W2_ID" --query Output | tail -n 20 >&2 || true
fi
ud1=$(q ec2 describe-instance-attribute --instance-id "$W1_ID" --attribute userData --query UserData.Value)
ud2=$(q ec2 describe-instance-attribute --instance-id "$W2_ID" --attribute userData --query UserData.Value)
[ -n "$ud1" ] && [ "$ud1" = "$ud2" ] && ok "both instances got the very same user data (DescribeInstanceAttribute userData)" \
  || bad "the user data differs between the two instances"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 30: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 30: all observations hold"
