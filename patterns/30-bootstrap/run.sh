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

ENDPOINT=${NIMBUS_ENDPOINT:-${AWS_ENDPOINT_URL:-http://localhost:4566}}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --endpoint-url) ENDPOINT=$2; shift 2 ;;
    --endpoint-url=*) ENDPOINT=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
ENDPOINT=${ENDPOINT%/}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export AWS_PAGER=""

# --- helpers ------------------------------------------------------------------------------
awsc() { aws --endpoint-url "$ENDPOINT" "$@"; }
q()    { aws --endpoint-url "$ENDPOINT" --output text "$@"; }   # text answers (with --query)
FAILED=0
DONE=0
ok()   { printf '  ok    %s\n' "$*"; }
bad()  { printf '  FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }
step() { printf '\n== %s\n' "$*"; }
say()  { printf '        %s\n' "$*"; }

# HTTP from this machine to instances (private IPs, Elastic IPs): never through a proxy.
get()  { curl -sS -f --noproxy '*' -m "${2:-3}" "$1" 2>/dev/null; }        # body of a 2xx answer
code() { curl -s --noproxy '*' -m "${2:-3}" -o /dev/null -w '%{http_code}' "$1" || true; }  # 000: no answer
wait_get() {  # wait_get URL SECONDS [REGEX]: prints the body once URL answers 2xx (matching REGEX)
  local end=$((SECONDS + $2)) body=""
  while :; do
    if body=$(get "$1" "${GET_TIMEOUT:-2}") && { [ -z "${3:-}" ] || grep -Eq -- "$3" <<<"$body"; }; then
      printf '%s' "$body"; return 0
    fi
    if [ "$SECONDS" -ge "$end" ]; then printf '%s' "$body"; return 1; fi
    sleep 0.3
  done
}
wait_instances() {  # wait_instances STATE SECONDS ID...: until every instance is in STATE
  local want=$1 end=$((SECONDS + $2)) states; shift 2
  while :; do
    states=$(q ec2 describe-instances --instance-ids "$@" --query 'Reservations[].Instances[].State.Name' 2>/dev/null || true)
    if [ -n "$states" ] && ! tr '\t' '\n' <<<"$states" | grep -qvx "$want"; then return 0; fi
    if [ "$SECONDS" -ge "$end" ]; then echo "instances $* are: ${states:-?}" >&2; return 1; fi
    sleep 0.5
  done
}
wait_volume() {  # wait_volume VOLUME STATE SECONDS
  local end=$((SECONDS + $3)) state
  while :; do
    state=$(q ec2 describe-volumes --volume-ids "$1" --query 'Volumes[0].State' 2>/dev/null || true)
    [ "$state" = "$2" ] && return 0
    if [ "$SECONDS" -ge "$end" ]; then echo "volume $1 is ${state:-?}, not $2" >&2; return 1; fi
    sleep 0.5
  done
}
wait_console() {  # wait_console INSTANCE SECONDS REGEX: prints the console output once it matches
  local end=$((SECONDS + $2)) out
  while :; do
    out=$(q ec2 get-console-output --instance-id "$1" --query Output 2>/dev/null || true)
    if grep -Eq -- "$3" <<<"$out"; then printf '%s' "$out"; return 0; fi
    if [ "$SECONDS" -ge "$end" ]; then printf '%s' "$out"; return 1; fi
    sleep 0.5
  done
}

# --- nimbus must run instances for real ------------------------------------------------------
HEALTH=$(curl -sS --noproxy '*' -m 5 "$ENDPOINT/_nimbus/health" 2>&1 || true)
if ! grep -Eq '"instance_driver" *: *"namespace"' <<<"$HEALTH"; then
  echo "this example needs instances that really run: nimbus serving as root on Linux" >&2
  echo "(instance_driver \"namespace\"); $ENDPOINT/_nimbus/health answered: ${HEALTH:-nothing}" >&2
  exit 2
fi

# --- what this run makes, and how it goes away again -----------------------------------------
RUN="$PATTERN_ID-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
WORK=$(mktemp -d)
INSTANCES=(); VOLUMES=(); SNAPSHOTS=(); IMAGES=(); SGS=(); ADDRESSES=(); BUCKETS=(); PROFILES=(); ROLES=()
made() {  # made KIND ID: says so, and remembers it for the clean-up
  printf '  made: %s %s\n' "$1" "$2"
  case $1 in
    instance) INSTANCES+=("$2") ;;
    volume) VOLUMES+=("$2") ;;
    snapshot) SNAPSHOTS+=("$2") ;;
    image) IMAGES+=("$2") ;;
    security-group) SGS+=("$2") ;;
    address) ADDRESSES+=("$2") ;;
    bucket) BUCKETS+=("$2") ;;
    instance-profile) PROFILES+=("$2") ;;
    role) ROLES+=("$2") ;;
  esac
}
cleanup() {
  local rc=$? a assoc n p r pol
  set +e
  if [ "$DONE" = 0 ] && [ "$rc" != 0 ]; then
    case $rc in
      130|143) printf '  FAIL  interrupted (exit %s)\n' "$rc" ;;
      *) printf '  FAIL  the script stopped early (exit %s): see the error above\n' "$rc" ;;
    esac
  fi
  if [ "$KEEP" = 1 ]; then
    echo; echo "kept (--keep): every resource listed as \"made:\" above (all named or tagged $RUN)"
    rm -rf "$WORK"; return
  fi
  echo; echo "cleaning up $RUN"
  for a in "${ADDRESSES[@]}"; do
    assoc=$(q ec2 describe-addresses --allocation-ids "$a" --query 'Addresses[0].AssociationId' 2>/dev/null)
    case $assoc in ''|None) ;; *) awsc ec2 disassociate-address --association-id "$assoc" >/dev/null 2>&1 ;; esac
    awsc ec2 release-address --allocation-id "$a" >/dev/null 2>&1
  done
  if [ ${#INSTANCES[@]} -gt 0 ]; then
    awsc ec2 terminate-instances --instance-ids "${INSTANCES[@]}" >/dev/null 2>&1
    wait_instances terminated 60 "${INSTANCES[@]}" 2>/dev/null
  fi
  for a in "${VOLUMES[@]}"; do awsc ec2 delete-volume --volume-id "$a" >/dev/null 2>&1; done
  for a in "${IMAGES[@]}"; do awsc ec2 deregister-image --image-id "$a" >/dev/null 2>&1; done
  for a in "${SNAPSHOTS[@]}"; do awsc ec2 delete-snapshot --snapshot-id "$a" >/dev/null 2>&1; done
  for ((n = ${#SGS[@]} - 1; n >= 0; n--)); do  # newest first: later groups may refer to earlier ones
    awsc ec2 delete-security-group --group-id "${SGS[n]}" >/dev/null 2>&1
  done
  for a in "${BUCKETS[@]}"; do awsc s3 rb "s3://$a" --force >/dev/null 2>&1; done
  for p in "${PROFILES[@]}"; do
    for r in "${ROLES[@]}"; do
      awsc iam remove-role-from-instance-profile --instance-profile-name "$p" --role-name "$r" >/dev/null 2>&1
    done
    awsc iam delete-instance-profile --instance-profile-name "$p" >/dev/null 2>&1
  done
  for r in "${ROLES[@]}"; do
    for pol in $(q iam list-role-policies --role-name "$r" --query 'PolicyNames[]' 2>/dev/null); do
      awsc iam delete-role-policy --role-name "$r" --policy-name "$pol" >/dev/null 2>&1
    done
    awsc iam delete-role --role-name "$r" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "endpoint: $ENDPOINT"
echo "run: $RUN"
BASE_IMAGE=$(q ec2 describe-images --owners amazon --filters Name=name,Values=nimbus/host-root --query 'Images[0].ImageId')
VPC=$(q ec2 describe-vpcs --filters Name=isDefault,Values=true --query 'Vpcs[0].VpcId')

launch() {  # launch NAME EXTRA_TAGS [run-instances arguments...]: prints "INSTANCE_ID PRIVATE_IP"
  local name=$1 extra=$2; shift 2
  q ec2 run-instances --count 1 --instance-type t2.micro \
    --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$RUN-$name},{Key=nimbus-pattern,Value=$RUN}$extra]" \
    "$@" --query 'Instances[0].[InstanceId,PrivateIpAddress]'
}
new_group() {  # new_group NAME DESCRIPTION: prints the new security group's id
  q ec2 create-security-group --group-name "$RUN-$1" --description "$2" --vpc-id "$VPC" \
    --tag-specifications "ResourceType=security-group,Tags=[{Key=nimbus-pattern,Value=$RUN}]" --query GroupId
}
open_port() {  # open_port GROUP PORT: admits TCP PORT from anywhere (this machine included)
  awsc ec2 authorize-security-group-ingress --group-id "$1" --protocol tcp --port "$2" --cidr 0.0.0.0/0 >/dev/null
}

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
