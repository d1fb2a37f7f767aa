#!/usr/bin/env bash
# Pattern 1, snapshot: a point-in-time copy of an instance's EBS volume.
# A writer instance formats an attached volume and writes file A; CreateSnapshot copies
# the volume (pending -> completed); only then does the writer add file B. A volume
# made from the snapshot, mounted by a second instance, holds A and not B. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Everything made is
# listed as "made:" and removed at the end unless --keep. Exits non-zero if an
# observation fails.
PATTERN_ID=p01

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

step "1. a writer instance with an empty 1 GiB volume attached as /dev/sdf"
SG=$(new_group web "pattern 01: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
# The writer waits for its volume, makes a file system, writes A and syncs, serves /data
# over HTTP, and writes B only when its Phase tag (read through the metadata service)
# says the snapshot is taken.
cat > "$WORK/writer.sh" <<'UD'
#!/bin/bash
for i in $(seq 300); do [ -b /dev/sdf ] && break; sleep 0.2; done
mkfs.ext4 -q -L p01-data /dev/sdf
mkdir -p /data && mount /dev/sdf /data
echo "A: written before the snapshot at $(date -u +%FT%T.%NZ)" > /data/A.txt
sync
nohup python3 -m http.server 80 --directory /data >/dev/null 2>&1 &
echo "p01 writer: A written and synced"
for i in $(seq 600); do
  [ "$(curl -s http://169.254.169.254/latest/meta-data/tags/instance/Phase)" = snapshot-taken ] && break
  sleep 0.2
done
echo "B: written after the snapshot at $(date -u +%FT%T.%NZ)" > /data/B.txt
sync
echo "p01 writer: B written and synced"
UD
# The reader waits for a volume at /dev/sdf, mounts the file system on it and serves it.
cat > "$WORK/reader.sh" <<'UD'
#!/bin/bash
for i in $(seq 600); do [ -b /dev/sdf ] && break; sleep 0.2; done
mkdir -p /data && mount /dev/sdf /data && echo "p01 reader: mounted the restored volume"
nohup python3 -m http.server 80 --directory /data >/dev/null 2>&1 &
UD
VOL=$(q ec2 create-volume --availability-zone us-east-1a --size 1 --volume-type gp2 \
  --tag-specifications "ResourceType=volume,Tags=[{Key=Name,Value=$RUN-original},{Key=nimbus-pattern,Value=$RUN}]" \
  --query VolumeId); made volume "$VOL"
out=$(launch writer ",{Key=Phase,Value=writing}" --image-id "$BASE_IMAGE" --security-group-ids "$SG" \
  --metadata-options InstanceMetadataTags=enabled --user-data "file://$WORK/writer.sh")
read -r W_ID W_IP <<<"$out"; made instance "$W_ID"
# the reader boots now too and waits for its volume
out=$(launch reader "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/reader.sh")
read -r R_ID R_IP <<<"$out"; made instance "$R_ID"
echo "writer instance: $W_ID $W_IP"
echo "reader instance: $R_ID $R_IP"
wait_volume "$VOL" available 30
wait_instances running 30 "$W_ID"
awsc ec2 attach-volume --volume-id "$VOL" --instance-id "$W_ID" --device /dev/sdf >/dev/null
echo "original volume: $VOL"

step "2. the writer writes A (before the snapshot)"
if A=$(wait_get "http://$W_IP/A.txt" 40); then
  ok "file A is on the original volume: $A"
else
  bad "the writer does not serve /A.txt at http://$W_IP/ (got: ${A:-nothing})"
  q ec2 get-console-output --instance-id "$W_ID" --query Output | tail -n 20 >&2 || true
fi
[ "$(code "http://$W_IP/B.txt")" = 404 ] && ok "file B is not there yet" || bad "file B is there before the snapshot"

step "3. CreateSnapshot: pending -> completed"
read -r SNAP STATE <<<"$(q ec2 create-snapshot --volume-id "$VOL" --description "$RUN: A only" \
  --tag-specifications "ResourceType=snapshot,Tags=[{Key=nimbus-pattern,Value=$RUN}]" --query '[SnapshotId,State]')"
made snapshot "$SNAP"
echo "snapshot: $SNAP"
[ "$STATE" = pending ] && ok "CreateSnapshot answers State $STATE" || bad "CreateSnapshot answers State $STATE (expected pending)"
awsc ec2 wait snapshot-completed --snapshot-ids "$SNAP"
read -r STATE PROGRESS SVOL <<<"$(q ec2 describe-snapshots --snapshot-ids "$SNAP" --query 'Snapshots[0].[State,Progress,VolumeId]')"
if [ "$STATE/$PROGRESS/$SVOL" = "completed/100%/$VOL" ]; then
  ok "aws ec2 wait snapshot-completed: State $STATE, Progress $PROGRESS, VolumeId $SVOL"
else
  bad "snapshot: State $STATE, Progress $PROGRESS, VolumeId $SVOL (expected completed, 100%, $VOL)"
fi

step "4. the writer writes B (after the snapshot)"
awsc ec2 create-tags --resources "$W_ID" --tags Key=Phase,Value=snapshot-taken
if B=$(wait_get "http://$W_IP/B.txt" 20); then
  ok "file B is on the original volume: $B"
else
  bad "the writer did not write B (http://$W_IP/B.txt: ${B:-no answer})"
fi

step "5. a volume made from the snapshot, mounted by the reader"
RESTORED=$(q ec2 create-volume --availability-zone us-east-1a --snapshot-id "$SNAP" --volume-type gp2 \
  --tag-specifications "ResourceType=volume,Tags=[{Key=Name,Value=$RUN-restored},{Key=nimbus-pattern,Value=$RUN}]" \
  --query VolumeId); made volume "$RESTORED"
echo "restored volume: $RESTORED"
wait_volume "$RESTORED" available 30
read -r FROM SIZE <<<"$(q ec2 describe-volumes --volume-ids "$RESTORED" --query 'Volumes[0].[SnapshotId,Size]')"
[ "$FROM" = "$SNAP" ] && ok "volume $RESTORED (${SIZE} GiB) has SnapshotId $FROM" || bad "volume $RESTORED has SnapshotId $FROM (expected $SNAP)"
wait_instances running 30 "$R_ID"
awsc ec2 attach-volume --volume-id "$RESTORED" --instance-id "$R_ID" --device /dev/sdf >/dev/null
if listing=$(wait_get "http://$R_IP/" 40 'A\.txt'); then
  say "reader's /data: $(grep -o 'href="[^"]*"' <<<"$listing" | sed 's/href="//; s/"$//' | tr '\n' ' ')"
else
  bad "the reader does not serve the restored volume at http://$R_IP/"
  q ec2 get-console-output --instance-id "$R_ID" --query Output | tail -n 20 >&2 || true
fi
RA=$(get "http://$R_IP/A.txt" || true)
if [ -n "$RA" ] && [ "$RA" = "${A:-}" ]; then ok "A (written before the snapshot) is in the restored volume: $RA"
else bad "A in the restored volume: '${RA}' (expected '${A:-}')"; fi
c=$(code "http://$R_IP/B.txt")
[ "$c" = 404 ] && ok "B (written after the snapshot) is not in the restored volume: GET /B.txt -> 404" \
  || bad "GET http://$R_IP/B.txt -> $c (expected 404: B was written after the snapshot)"
c=$(code "http://$W_IP/B.txt")
[ "$c" = 200 ] && ok "the original volume still has B: GET http://$W_IP/B.txt -> 200" || bad "the original volume lost B ($c)"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 1: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 1: all observations hold"
