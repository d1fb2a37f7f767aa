# Shared by the EC2 pattern walk-throughs (patterns/NN-*/run.sh), which source it
# after setting PATTERN_ID: command line (--endpoint-url, --keep, --help), test
# credentials, the ok/FAIL reporting, the list of everything made and its removal
# at exit, and the helpers that launch instances and wait for their boot.

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

# --- nimbus must run instances for real (unless the script sets NEEDS_INSTANCES=0) ------------
HEALTH=$(curl -sS --noproxy '*' -m 5 "$ENDPOINT/_nimbus/health" 2>&1 || true)
if [ "${NEEDS_INSTANCES:-1}" = 1 ] && ! grep -Eq '"instance_driver" *: *"namespace"' <<<"$HEALTH"; then
  echo "this example needs instances that really run: nimbus serving as root on Linux" >&2
  echo "(instance_driver \"namespace\"); $ENDPOINT/_nimbus/health answered: ${HEALTH:-nothing}" >&2
  exit 2
fi

# --- what this run makes, and how it goes away again -----------------------------------------
RUN="$PATTERN_ID-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
WORK=$(mktemp -d)
INSTANCES=(); VOLUMES=(); SNAPSHOTS=(); IMAGES=(); SGS=(); ADDRESSES=(); BUCKETS=(); PROFILES=(); ROLES=(); KEYPAIRS=(); QUEUES=(); ALARMS=()
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
    key-pair) KEYPAIRS+=("$2") ;;
    queue) QUEUES+=("$2") ;;  # its URL
    alarm) ALARMS+=("$2") ;;
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
  for a in "${QUEUES[@]}"; do awsc sqs delete-queue --queue-url "$a" >/dev/null 2>&1; done
  if [ ${#ALARMS[@]} -gt 0 ]; then awsc cloudwatch delete-alarms --alarm-names "${ALARMS[@]}" >/dev/null 2>&1; fi
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
  for a in "${KEYPAIRS[@]}"; do awsc ec2 delete-key-pair --key-name "$a" >/dev/null 2>&1; done
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

