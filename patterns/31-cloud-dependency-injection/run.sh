#!/usr/bin/env bash
# Pattern 31, cloud dependency injection: one generic user data for every instance; what
# an instance becomes is injected from outside. At boot it reads its own Role tag
# (instance id from the metadata service, then `aws ec2 describe-tags`), fetches
# ${Role}.sh from a bucket and runs it. Two instances with the same user data, tagged
# Role=web and Role=worker, become two different servers. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Inside, the
# instances use the same `aws` CLI as this script (the host's / is their lower layer).
# Everything made is listed as "made:" and removed at the end unless --keep. Exits
# non-zero if an observation fails.
PATTERN_ID=p31

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
AWS_DIR=$(dirname "$(command -v aws)")
BUCKET="$RUN-roles"
ROLE="$RUN-node"
PROFILE="$RUN-node"

step "1. the role scripts in a bucket"
awsc s3 mb "s3://$BUCKET" >/dev/null; made bucket "$BUCKET"
echo "bucket: $BUCKET"
cat > "$WORK/web.sh" <<'ROLE'
#!/bin/bash
# Role web: a web server with a page.
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /srv/web
echo "<h1>web server</h1><p>$IID</p>" > /srv/web/index.html
nohup python3 -m http.server 80 --directory /srv/web >/dev/null 2>&1 &
echo "role web: serving /srv/web"
ROLE
cat > "$WORK/worker.sh" <<'ROLE'
#!/bin/bash
# Role worker: works through jobs in the background and reports its progress as JSON.
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /srv/status
cat > /usr/local/bin/p31-worker <<WORKER
#!/bin/bash
n=0
while :; do
  n=\$((n + 1))
  echo "{\"role\": \"worker\", \"instance\": \"$IID\", \"jobs_done\": \$n}" > /srv/status/status.json.tmp
  mv /srv/status/status.json.tmp /srv/status/status.json
  sleep 0.5
done
WORKER
chmod 755 /usr/local/bin/p31-worker
nohup /usr/local/bin/p31-worker >/dev/null 2>&1 &
nohup python3 -m http.server 80 --directory /srv/status >/dev/null 2>&1 &
echo "role worker: working"
ROLE
awsc s3 cp "$WORK/web.sh" "s3://$BUCKET/roles/web.sh" --only-show-errors
awsc s3 cp "$WORK/worker.sh" "s3://$BUCKET/roles/worker.sh" --only-show-errors
ok "uploaded s3://$BUCKET/roles/web.sh and s3://$BUCKET/roles/worker.sh"

step "2. a role for the instances: read the role scripts, read tags"
cat > "$WORK/trust.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
cat > "$WORK/policy.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::$BUCKET/roles/*"},
               {"Effect": "Allow", "Action": "ec2:DescribeTags", "Resource": "*"}]}
JSON
awsc iam create-role --role-name "$ROLE" --assume-role-policy-document "file://$WORK/trust.json" >/dev/null; made role "$ROLE"
if err=$(awsc iam put-role-policy --role-name "$ROLE" --policy-name bootstrap \
    --policy-document "file://$WORK/policy.json" 2>&1); then
  POLICY="s3:GetObject on the role scripts, ec2:DescribeTags"
elif grep -q InvalidAction <<<"$err"; then
  # nimbus's IAM has roles and instance profiles but no role policies yet (and does not
  # evaluate identity policies); on AWS the role needs this policy.
  printf '  gap   nimbus does not implement PutRolePolicy: %s\n' "$(tr -d '\n' <<<"$err")"
  POLICY="no policy: PutRolePolicy is not implemented by nimbus"
else
  echo "$err" >&2; exit 1
fi
awsc iam create-instance-profile --instance-profile-name "$PROFILE" >/dev/null; made instance-profile "$PROFILE"
awsc iam add-role-to-instance-profile --instance-profile-name "$PROFILE" --role-name "$ROLE"
ok "role $ROLE ($POLICY) in instance profile $PROFILE"

step "3. two instances, the same generic user data, tagged Role=web and Role=worker"
SG=$(new_group servers "pattern 31: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
{ echo '#!/bin/bash'; echo "export PATH=$AWS_DIR:\$PATH"; echo "ROLES=s3://$BUCKET/roles"; cat <<'UD'
# Generic bootstrap: what this instance becomes is injected through its Role tag.
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
ROLE=$(aws ec2 describe-tags --filters "Name=resource-id,Values=$IID" Name=key,Values=Role \
  --query 'Tags[0].Value' --output text)
echo "bootstrap: $IID has Role=$ROLE"
aws s3 cp "$ROLES/$ROLE.sh" /opt/role.sh --only-show-errors
bash /opt/role.sh
UD
} > "$WORK/generic.sh"
out=$(launch web ",{Key=Role,Value=web}" --image-id "$BASE_IMAGE" --security-group-ids "$SG" \
  --iam-instance-profile "Name=$PROFILE" --user-data "file://$WORK/generic.sh")
read -r WEB_ID WEB_IP <<<"$out"; made instance "$WEB_ID"
out=$(launch worker ",{Key=Role,Value=worker}" --image-id "$BASE_IMAGE" --security-group-ids "$SG" \
  --iam-instance-profile "Name=$PROFILE" --user-data "file://$WORK/generic.sh")
read -r WRK_ID WRK_IP <<<"$out"; made instance "$WRK_ID"
echo "web instance: $WEB_ID $WEB_IP"
echo "worker instance: $WRK_ID $WRK_IP"
ud1=$(q ec2 describe-instance-attribute --instance-id "$WEB_ID" --attribute userData --query UserData.Value)
ud2=$(q ec2 describe-instance-attribute --instance-id "$WRK_ID" --attribute userData --query UserData.Value)
[ -n "$ud1" ] && [ "$ud1" = "$ud2" ] && ok "both have the very same user data (DescribeInstanceAttribute userData)" \
  || bad "the two instances' user data differ"

step "4. they became different servers"
if page=$(wait_get "http://$WEB_IP/" 40 "web server"); then
  [ "$page" = "<h1>web server</h1><p>$WEB_ID</p>" ] && ok "Role=web $WEB_ID serves a page: $page" || bad "Role=web $WEB_ID serves '$page'"
else
  bad "Role=web $WEB_ID serves no page at http://$WEB_IP/ (${page:-no answer})"
  q ec2 get-console-output --instance-id "$WEB_ID" --query Output | tail -n 20 >&2 || true
fi
c=$(code "http://$WEB_IP/status.json")
[ "$c" = 404 ] && ok "Role=web has no worker status: GET /status.json -> 404" || bad "Role=web: GET /status.json -> $c"
if s1=$(wait_get "http://$WRK_IP/status.json" 40 '"role": "worker"'); then
  sleep 1.2
  s2=$(get "http://$WRK_IP/status.json" || true)
  j1=$(grep -o '"jobs_done": [0-9]*' <<<"$s1" | grep -o '[0-9]*$'); j2=$(grep -o '"jobs_done": [0-9]*' <<<"$s2" | grep -o '[0-9]*$')
  grep -q "\"instance\": \"$WRK_ID\"" <<<"$s1" && ok "Role=worker $WRK_ID reports: $s1" || bad "Role=worker reports '$s1'"
  [ -n "$j2" ] && [ "$j2" -gt "$j1" ] && ok "the worker keeps working: jobs_done $j1 -> $j2" || bad "jobs_done did not grow: '$j1' -> '$j2'"
else
  bad "Role=worker $WRK_ID reports nothing at http://$WRK_IP/status.json (${s1:-no answer})"
  q ec2 get-console-output --instance-id "$WRK_ID" --query Output | tail -n 20 >&2 || true
fi
page=$(get "http://$WRK_IP/" || true)
case $page in *"web server"*) bad "Role=worker serves the web page" ;; *) ok "Role=worker serves no web page" ;; esac
for pair in "$WEB_ID web" "$WRK_ID worker"; do
  read -r id role <<<"$pair"
  if out=$(wait_console "$id" 10 "bootstrap: $id has Role="); then
    line=$(grep -o "bootstrap: $id has Role=.*" <<<"$out" | tr -d '\r')
    [ "$line" = "bootstrap: $id has Role=$role" ] && ok "console of $id: $line" || bad "console of $id: $line"
  else
    bad "no bootstrap line on the console of $id"
  fi
done

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 31: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 31: all observations hold"
