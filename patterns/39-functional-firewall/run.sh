#!/usr/bin/env bash
# Pattern 39, functional firewall: security groups by function. The db group admits
# TCP 3306 only from members of the web group (a source group, not an address range).
# A db instance listens on 3306; a web instance reaches it, an instance of another group
# and this machine do not. Granting the other group and revoking it again takes effect
# at once. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances and enforces security
# groups with nftables). Everything made is listed as "made:" and removed at the end
# unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p39

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

step "1. security groups by function"
WEB_SG=$(new_group web "pattern 39: web servers, http from anywhere"); made security-group "$WEB_SG"
open_port "$WEB_SG" 80
DB_SG=$(new_group db "pattern 39: databases, 3306 from the web group only"); made security-group "$DB_SG"
awsc ec2 authorize-security-group-ingress --group-id "$DB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=3306,ToPort=3306,UserIdGroupPairs=[{GroupId=$WEB_SG}]" >/dev/null
OTHER_SG=$(new_group other "pattern 39: something else, http from anywhere"); made security-group "$OTHER_SG"
open_port "$OTHER_SG" 80
echo "groups: web $WEB_SG, db $DB_SG, other $OTHER_SG"
rule=$(q ec2 describe-security-groups --group-ids "$DB_SG" \
  --query 'SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,ToPort,UserIdGroupPairs[0].GroupId,length(IpRanges)]' | tr '\t' ' ')
[ "$rule" = "tcp 3306 3306 $WEB_SG 0" ] && ok "db group: only tcp 3306 from $WEB_SG (no address ranges)" \
  || bad "db group rules: $rule (expected tcp 3306 3306 $WEB_SG 0)"

step "2. a db instance on 3306; a web and an other instance that probe it"
# The "database": answers every connection on 3306 with a greeting naming the caller.
cat > "$WORK/db.sh" <<'UD'
#!/bin/bash
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /opt/p39
cat > /opt/p39/db.py <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 3306))
s.listen(16)
while True:
    c, addr = s.accept()
    c.sendall(f"db {sys.argv[1]} greets {addr[0]}\n".encode())
    c.close()
PY
nohup python3 /opt/p39/db.py "$IID" >/dev/null 2>&1 &
echo "db: listening on 3306"
UD
# The probe: GET /probe?host=H&port=P connects from inside the instance and says what happened.
cat > "$WORK/probe.sh" <<'UD'
#!/bin/bash
mkdir -p /opt/p39
cat > /opt/p39/probe.py <<'PY'
import http.server, socket, urllib.parse
class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        host, port = q.get("host", [""])[0], int(q.get("port", ["3306"])[0])
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(2)
                body = "connected: " + s.recv(200).decode().strip()
        except socket.timeout:
            body = "failed: timeout"
        except ConnectionRefusedError:
            body = "failed: refused"
        except OSError as e:
            body = f"failed: {e}"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Probe).serve_forever()
PY
nohup python3 /opt/p39/probe.py >/dev/null 2>&1 &
echo "probe: serving on 80"
UD
out=$(launch db "" --image-id "$BASE_IMAGE" --security-group-ids "$DB_SG" --user-data "file://$WORK/db.sh")
read -r DB_ID DB_IP <<<"$out"; made instance "$DB_ID"
out=$(launch web "" --image-id "$BASE_IMAGE" --security-group-ids "$WEB_SG" --user-data "file://$WORK/probe.sh")
read -r WEB_ID WEB_IP <<<"$out"; made instance "$WEB_ID"
out=$(launch other "" --image-id "$BASE_IMAGE" --security-group-ids "$OTHER_SG" --user-data "file://$WORK/probe.sh")
read -r OTH_ID OTH_IP <<<"$out"; made instance "$OTH_ID"
echo "db instance: $DB_ID $DB_IP"
echo "web instance: $WEB_ID $WEB_IP"
echo "other instance: $OTH_ID $OTH_IP"
probe() { get "http://$1/probe?host=$DB_IP&port=3306" 6 || echo "no answer from the probe at $1"; }

step "3. who reaches db:3306"
if r=$(wait_get "http://$WEB_IP/probe?host=$DB_IP&port=3306" 40 '^connected: '); then
  [ "$r" = "connected: db $DB_ID greets $WEB_IP" ] && ok "web ($WEB_IP) -> db $DB_IP:3306: $r" \
    || bad "web -> db:3306: $r (expected the db's greeting to $WEB_IP)"
else
  bad "web ($WEB_IP) -> db $DB_IP:3306: ${r:-no answer from the probe}"
fi
wait_get "http://$OTH_IP/probe?host=127.0.0.1&port=1" 40 >/dev/null || true   # the other probe is up
r=$(probe "$OTH_IP")
case $r in "failed: "*) ok "other ($OTH_IP) -> db $DB_IP:3306: $r" ;; *) bad "other ($OTH_IP) -> db $DB_IP:3306: $r (expected a failure)" ;; esac
host_try() {  # what this machine gets when it connects to db:3306
  local t0=$SECONDS out
  if out=$(timeout 3 bash -c "exec 3<>/dev/tcp/$DB_IP/3306 && head -n 1 <&3" 2>&1); then echo "connected: $out"
  elif [ $((SECONDS - t0)) -ge 3 ]; then echo "failed: timeout"
  else echo "failed: ${out##*: }"; fi
}
r=$(host_try)
case $r in "failed: "*) ok "this machine -> db $DB_IP:3306: $r" ;; *) bad "this machine -> db $DB_IP:3306: $r (expected a failure)" ;; esac

step "4. grant the other group, then revoke it again"
awsc ec2 authorize-security-group-ingress --group-id "$DB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=3306,ToPort=3306,UserIdGroupPairs=[{GroupId=$OTHER_SG}]" >/dev/null
say "authorized tcp 3306 from $OTHER_SG on $DB_SG"
if r=$(wait_get "http://$OTH_IP/probe?host=$DB_IP&port=3306" 15 '^connected: '); then
  ok "other -> db:3306 now: $r"
else
  bad "other -> db:3306 after the grant: $r"
fi
awsc ec2 revoke-security-group-ingress --group-id "$DB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=3306,ToPort=3306,UserIdGroupPairs=[{GroupId=$OTHER_SG}]" >/dev/null
say "revoked it"
if r=$(GET_TIMEOUT=5 wait_get "http://$OTH_IP/probe?host=$DB_IP&port=3306" 15 "^failed: "); then
  ok "other -> db:3306 after the revoke: $r"
else
  bad "other -> db:3306 after the revoke: $r"
fi
r=$(probe "$WEB_IP")
[ "$r" = "connected: db $DB_ID greets $WEB_IP" ] && ok "web -> db:3306 still: $r" || bad "web -> db:3306 after the revoke: $r"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 39: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 39: all observations hold"
