#!/usr/bin/env bash
# Pattern 44, temporary development environments: a whole environment (a bucket with
# objects, two queues with messages - one of them taken and in flight -, two instances
# whose user data writes files to their disks and serves them over HTTP, two security
# groups with rules, an IAM role in an instance profile) comes up in seconds and is used.
# Then the whole cloud is saved to one archive (`nimbus state save`), thrown away
# (`nimbus reset`) and brought back (`nimbus state load`): every object, message (with
# its receive count; the one in flight stays hidden until its timeout), instance
# (running again, its files intact) and rule is back. Prints the time of each phase and
# the archive's size. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh --yes-reset [--endpoint-url URL] [--keep]
#
# THIS RESETS THE WHOLE NIMBUS: between the reset and the load every resource of every
# user of that nimbus is gone, and what anyone changes between the save and the load is
# lost. So the script refuses to run without --yes-reset (or NIMBUS_ALLOW_RESET=1).
# Point it at a nimbus of your own.
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. The nimbus
# binary (for `nimbus state` and `nimbus reset`) is $NIMBUS_BIN, else `nimbus` on PATH.
# Needs nimbus serving as root on Linux (its namespace driver runs the instances and
# enforces security groups). Everything made is listed as "made:" and removed at the end
# (timed: the teardown) unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p44

set -euo pipefail
export LC_NUMERIC=C   # $EPOCHREALTIME with a dot

# --- the whole nimbus is reset: only when asked for ------------------------------------------
ALLOW_RESET=${NIMBUS_ALLOW_RESET:-0}
HELP=0
ARGS=()
for a in "$@"; do
  case $a in
    --yes-reset) ALLOW_RESET=1 ;;
    -h|--help) HELP=1; ARGS+=("$a") ;;
    *) ARGS+=("$a") ;;
  esac
done
set -- ${ARGS[@]+"${ARGS[@]}"}
if [ "$HELP" = 0 ] && [ "$ALLOW_RESET" != 1 ]; then
  cat >&2 <<'EOF'
refusing to run: this example saves the whole nimbus, RESETS it (every bucket, queue,
instance, group and role of every account is removed) and loads the saved state back.
Between the reset and the load the nimbus is empty, and whatever anyone changes between
the save and the load is lost. Run it against a nimbus of your own, and say so:

  ./run.sh --yes-reset [--endpoint-url URL] [--keep]      (or NIMBUS_ALLOW_RESET=1 ./run.sh)
EOF
  exit 2
fi
NIMBUS=${NIMBUS_BIN:-$(command -v nimbus || true)}
if [ "$HELP" = 0 ] && { [ -z "$NIMBUS" ] || [ ! -x "$NIMBUS" ]; }; then
  echo "needs the nimbus binary for \`nimbus state\` and \`nimbus reset\`: put it on PATH or set NIMBUS_BIN" >&2
  exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
AWS_DIR=$(dirname "$(command -v aws)")
BUCKET="$RUN-assets"
ROLE="$RUN-dev"
PROFILE="$RUN-dev"
INFLIGHT=${P44_INFLIGHT_SECONDS:-45}   # the visibility timeout of the job taken before the save
ARCHIVE="$WORK/dev-env.tar"

QUEUES=()
TIMES=()
T0=$EPOCHREALTIME
clock() { T0=$EPOCHREALTIME; }
took() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
SIZE=0
timing() { TIMES+=("$1 $2 s"); printf '  time: %s %s s\n' "$1" "$2"; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", b - a }'; }  # since A B: B - A, signed
summary() { local IFS=,; echo "timings:${TIMES[*]/#/ }; archive $SIZE bytes"; }
# The teardown is the lib's clean-up, timed, with the queues (not a kind of the lib) first.
teardown() {
  local rc=$? t
  set +e
  if [ "$KEEP" = 0 ]; then
    t=$EPOCHREALTIME
    for a in ${QUEUES[@]+"${QUEUES[@]}"}; do awsc sqs delete-queue --queue-url "$a" >/dev/null 2>&1 || true; done
  fi
  (exit "$rc"); cleanup
  if [ "$KEEP" = 0 ] && [ "$DONE" = 1 ]; then
    T0=$t; timing teardown "$(took)"
    summary
  fi
  exit "$rc"
}
trap teardown EXIT

rules_of() {  # rules_of GROUP...: per group "NAME: RULE; RULE" (protocol, ports, address ranges, groups)
  q ec2 describe-security-groups --group-ids "$@" --query \
    "SecurityGroups[].[GroupName, join('; ', sort(IpPermissions[].join(' ', [IpProtocol, to_string(FromPort), to_string(ToPort), join(',', IpRanges[].CidrIp), join(',', UserIdGroupPairs[].GroupId)])))]" |
    sed 's/\t/: /' | sort
}
queue_counts() {  # queue_counts URL: "VISIBLE/IN_FLIGHT"
  q sqs get-queue-attributes --queue-url "$1" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'Attributes.[ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]' | tr '\t' '/'
}

# ============================================================================================
step "1. up: the environment"
clock
# -- IAM: the role the web instance works as
cat > "$WORK/trust.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
awsc iam create-role --role-name "$ROLE" --assume-role-policy-document "file://$WORK/trust.json" >/dev/null; made role "$ROLE"
awsc iam create-instance-profile --instance-profile-name "$PROFILE" >/dev/null; made instance-profile "$PROFILE"
awsc iam add-role-to-instance-profile --instance-profile-name "$PROFILE" --role-name "$ROLE"
# -- S3: a bucket with a configuration, a binary blob and a note with metadata
awsc s3 mb "s3://$BUCKET" >/dev/null; made bucket "$BUCKET"
mkdir -p "$WORK/up/config" "$WORK/up/data" "$WORK/up/notes" "$WORK/back"
printf '{"environment": "%s", "feature_flags": ["fast-path", "dark-mode"]}\n' "$RUN" > "$WORK/up/config/app.json"
head -c 300000 /dev/urandom > "$WORK/up/data/blob.bin"
printf 'scratch notes of %s\n' "$RUN" > "$WORK/up/notes/today.txt"
awsc s3 cp --recursive "$WORK/up" "s3://$BUCKET/" --metadata owner=dev,ticket=DEV-44 --only-show-errors
OBJECTS=(config/app.json data/blob.bin notes/today.txt)
for key in "${OBJECTS[@]}"; do
  echo "object: $key $(stat -c %s "$WORK/up/$key") bytes, sha256 $(sha256sum < "$WORK/up/$key" | cut -d' ' -f1)"
done
# -- SQS: a work queue with five jobs, an event queue with three events
JOBS=$(q sqs create-queue --queue-name "$RUN-jobs" --attributes VisibilityTimeout=30 --query QueueUrl); made queue "$JOBS"; QUEUES+=("$JOBS")
EVENTS=$(q sqs create-queue --queue-name "$RUN-events" --query QueueUrl); made queue "$EVENTS"; QUEUES+=("$EVENTS")
send_batch() {  # send_batch URL ENTRY...: one SendMessageBatch of the JSON entries
  local url=$1 entries sent; shift
  entries="[$(IFS=,; echo "$*")]"
  sent=$(q sqs send-message-batch --queue-url "$url" --entries "$entries" --query 'length(Successful)')
  [ "$sent" = $# ] || { echo "send-message-batch to $url: $sent of $# sent" >&2; exit 1; }
}
send_batch "$JOBS" $(for n in 1 2 3 4 5; do printf '{"Id":"%s","MessageBody":"job-%s"} ' "$n" "$n"; done)
send_batch "$EVENTS" $(for n in 1 2 3; do
  printf '{"Id":"%s","MessageBody":"event-%s","MessageAttributes":{"kind":{"DataType":"String","StringValue":"build-%s"}}} ' "$n" "$n" "$n"
done)
# -- EC2: a web group (80 from anywhere, 22 from 10.0.0.0/8) and a worker group (80 from
# anywhere, 9000 from the web group)
WEB_SG=$(new_group web "pattern 44: web, http from anywhere, ssh from 10/8"); made security-group "$WEB_SG"
awsc ec2 authorize-security-group-ingress --group-id "$WEB_SG" --ip-permissions \
  "IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=0.0.0.0/0}]" "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=10.0.0.0/8}]" >/dev/null
WORKER_SG=$(new_group worker "pattern 44: worker, http from anywhere, 9000 from web"); made security-group "$WORKER_SG"
awsc ec2 authorize-security-group-ingress --group-id "$WORKER_SG" --ip-permissions \
  "IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=0.0.0.0/0}]" "IpProtocol=tcp,FromPort=9000,ToPort=9000,UserIdGroupPairs=[{GroupId=$WEB_SG}]" >/dev/null
# -- two instances. The user data (first boot only) writes files to the instance's disk:
# a token it draws itself (a rerun would draw another), a random blob, and for web the
# configuration fetched from the bucket with the role's credentials; it installs a
# per-boot script (every boot) that logs the boot, serves /srv/dev on ports 80 and 9000 and,
# on web, logs who the instance is to AWS (its role's session, from the metadata service).
user_data() {  # user_data NAME FETCH(0|1)
  echo '#!/bin/bash'
  echo "export PATH=$AWS_DIR:\$PATH"
  echo "NAME=$1 FETCH=$2 CONFIG=s3://$BUCKET/config/app.json"
  cat <<'UD'
set -e
mkdir -p /srv/dev /var/lib/cloud/scripts/per-boot
cat /proc/sys/kernel/random/uuid > /srv/dev/token.txt
head -c 65536 /dev/urandom > /srv/dev/blob.bin
sha256sum /srv/dev/blob.bin | cut -d' ' -f1 > /srv/dev/blob.sha256
if [ "$FETCH" = 1 ]; then aws s3 cp "$CONFIG" /srv/dev/app.json --only-show-errors; fi
{ echo '#!/bin/bash'; echo "export PATH=$PATH"; cat <<'BOOT'
echo "boot at $(date +%s)" >> /srv/dev/boots.log
nohup python3 -m http.server 80 --directory /srv/dev >/dev/null 2>&1 &
nohup python3 -m http.server 9000 --directory /srv/dev >/dev/null 2>&1 &
if [ -f /srv/dev/app.json ]; then  # web: who it is at this boot, with its role's credentials
  (aws sts get-caller-identity --query Arn --output text >> /srv/dev/identity.log 2>&1 &)
fi
BOOT
} > /var/lib/cloud/scripts/per-boot/50-serve
chmod +x /var/lib/cloud/scripts/per-boot/50-serve
/var/lib/cloud/scripts/per-boot/50-serve
echo "p44 $NAME: wrote token $(cat /srv/dev/token.txt), blob $(cat /srv/dev/blob.sha256)"
UD
}
user_data web 1 > "$WORK/web.sh"
user_data worker 0 > "$WORK/worker.sh"
LAUNCHED=$EPOCHREALTIME
out=$(launch web "" --image-id "$BASE_IMAGE" --security-group-ids "$WEB_SG" \
  --iam-instance-profile "Name=$PROFILE" --user-data "file://$WORK/web.sh")
read -r WEB_ID WEB_IP <<<"$out"; made instance "$WEB_ID"
out=$(launch worker "" --image-id "$BASE_IMAGE" --security-group-ids "$WORKER_SG" --user-data "file://$WORK/worker.sh")
read -r WORKER_ID WORKER_IP <<<"$out"; made instance "$WORKER_ID"
echo "web instance: $WEB_ID $WEB_IP"
echo "worker instance: $WORKER_ID $WORKER_IP"
declare -A TOKEN BLOBSUM
for pair in "web $WEB_IP" "worker $WORKER_IP"; do
  read -r name ip <<<"$pair"
  if TOKEN[$name]=$(wait_get "http://$ip/blob.sha256" 60 '^[0-9a-f]{64}$' >/dev/null && get "http://$ip/token.txt"); then
    BLOBSUM[$name]=$(get "http://$ip/blob.sha256")
  else
    bad "$name ($ip) does not serve its files"; TOKEN[$name]=none; BLOBSUM[$name]=none
    q ec2 get-console-output --instance-id "$([ "$name" = web ] && echo "$WEB_ID" || echo "$WORKER_ID")" --query Output | tail -n 20 >&2 || true
  fi
done
say "both serve their disks $(since "$LAUNCHED" "$EPOCHREALTIME" | tr -d +) s after the first RunInstances"
timing up "$(took)"
ok "up in $(took) s: role + instance profile, bucket with ${#OBJECTS[@]} objects, 2 queues with 8 messages, 2 groups with 4 rules, 2 instances serving their disks"

step "2. use it"
if cfg=$(get "http://$WEB_IP/app.json") && [ "$cfg" = "$(cat "$WORK/up/config/app.json")" ]; then
  ok "web fetched config/app.json from the bucket as its role at boot: $cfg"
else
  bad "web's /srv/dev/app.json: ${cfg:-nothing} (expected the bucket's config/app.json)"
fi
for name in web worker; do say "$name's disk: token ${TOKEN[$name]}, blob sha256 ${BLOBSUM[$name]}"; done
if who=$(wait_get "http://$WEB_IP/identity.log" 30 "assumed-role/$ROLE/$WEB_ID"); then
  ok "web works as its role: $who"
else
  bad "web's identity.log: ${who:-nothing} (expected assumed-role/$ROLE/$WEB_ID)"
fi
reach() {  # reach URL: the HTTP status, or "dropped" (no answer in 3 s) or "refused"
  local rc=0 status
  status=$(curl -s --noproxy '*' -m 3 -o /dev/null -w '%{http_code}' "$1") || rc=$?
  case $rc in 0) echo "$status" ;; 28) echo dropped ;; 7) echo refused ;; *) echo "curl error $rc" ;; esac
}
firewall() {  # what this machine gets from worker's ports 80 (open to all) and 9000 (web group only)
  echo "worker:80 -> $(reach "http://$1/token.txt"), worker:9000 -> $(reach "http://$1:9000/token.txt")"
}
r=$(firewall "$WORKER_IP")
[ "$r" = "worker:80 -> 200, worker:9000 -> dropped" ] && ok "the worker group is enforced: from this machine $r" \
  || bad "from this machine $r (expected worker:80 -> 200, worker:9000 -> dropped)"
RULES=$(rules_of "$WEB_SG" "$WORKER_SG")
while read -r line; do say "$line"; done <<<"$RULES"
# Two workers take a job each. One fails and gives its job back (visible again, received
# once); the other is still on its job when the environment is saved (in flight, received
# once, hidden for INFLIGHT seconds). Taken last, just before the save: its timeout has
# to outlast the save, the reset and the load.
RETRIED=$(q sqs receive-message --queue-url "$JOBS" --max-number-of-messages 1 --query 'Messages[0].[Body,ReceiptHandle]')
read -r RETRIED_BODY handle <<<"$RETRIED"
TAKEN=$(q sqs receive-message --queue-url "$JOBS" --max-number-of-messages 1 --visibility-timeout "$INFLIGHT" \
  --query 'Messages[0].Body')
TAKEN_UNTIL=$(awk -v t="$EPOCHREALTIME" -v v="$INFLIGHT" 'BEGIN { printf "%.2f", t + v }')
awsc sqs change-message-visibility --queue-url "$JOBS" --receipt-handle "$handle" --visibility-timeout 0
say "$RETRIED_BODY was taken and given back (receive count 1, visible)"
say "$TAKEN is taken, in flight for ${INFLIGHT} s (receive count 1, invisible)"
c=$(queue_counts "$JOBS")
[ "$c" = "4/1" ] && ok "jobs: 4 visible (one of them received once), 1 in flight ($TAKEN)" || bad "jobs queue counts $c (expected 4/1)"

step "3. save the whole cloud"
clock
if out=$("$NIMBUS" state save "$ARCHIVE" --endpoint "$ENDPOINT" 2>&1); then
  timing save "$(took)"
  SIZE=$(stat -c %s "$ARCHIVE")
  ok "$out"
  echo "archive: $SIZE bytes ($((SIZE / 1024)) KiB), $(tar tf "$ARCHIVE" | wc -l) entries"
  listing=$(tar tf "$ARCHIVE")
  missing=""
  for id in "$WEB_ID" "$WORKER_ID"; do
    grep -q "^files/ec2/instances/$id/upper/srv/dev/token.txt$" <<<"$listing" || missing+=" $id"
  done
  [ -z "$missing" ] && ok "the archive holds both instances' writable layers (files/ec2/instances/<id>/upper/srv/dev/...)" \
    || bad "no upper/srv/dev/token.txt in the archive for:$missing"
else
  bad "nimbus state save: $out"; exit 1
fi

step "4. throw it all away: nimbus reset"
clock
if out=$("$NIMBUS" reset --endpoint "$ENDPOINT" 2>&1); then
  timing reset "$(took)"
  say "$(tr '\n' ' ' <<<"$out")"
else
  bad "nimbus reset: $out"; exit 1
fi
left=()
q s3api list-buckets --query 'Buckets[].Name' | tr '\t' '\n' | grep -qx "$BUCKET" && left+=("bucket")
[ -n "$(q sqs list-queues --queue-name-prefix "$RUN" --query 'QueueUrls[]' 2>/dev/null | grep -v '^None$' || true)" ] && left+=("queues")
[ -n "$(q ec2 describe-instances --filters "Name=tag:nimbus-pattern,Values=$RUN" "Name=instance-state-name,Values=pending,running,stopping,stopped" \
  --query 'Reservations[].Instances[].InstanceId')" ] && left+=("instances")
[ -n "$(q ec2 describe-security-groups --filters "Name=tag:nimbus-pattern,Values=$RUN" --query 'SecurityGroups[].GroupId')" ] && left+=("groups")
awsc iam get-role --role-name "$ROLE" >/dev/null 2>&1 && left+=("role")
[ "$(code "http://$WEB_IP/token.txt" 2)" = 000 ] || left+=("web still answers")
[ ${#left[@]} = 0 ] && ok "after the reset nothing of it is left: no bucket, queue, instance, group or role; $WEB_IP does not answer" \
  || bad "after the reset still there: ${left[*]}"

step "5. load the archive: nimbus restarts in place on it"
clock
if out=$("$NIMBUS" state load "$ARCHIVE" --endpoint "$ENDPOINT" 2>&1); then
  timing load "$(took)"
  ok "$out"
else
  bad "nimbus state load: $out"; exit 1
fi

step "6. everything is back"
# -- the queues first (the job in flight has a deadline)
c=$(queue_counts "$JOBS")
HIDDEN_AT=$EPOCHREALTIME
[ "$c" = "4/1" ] && ok "jobs: 4 visible, 1 still in flight ($(since "$TAKEN_UNTIL" "$HIDDEN_AT") s from its deadline)" \
  || bad "jobs queue counts after the load: $c (expected 4/1)"
c=$(queue_counts "$EVENTS")
[ "$c" = "3/0" ] && ok "events: 3 visible" || bad "events queue counts after the load: $c (expected 3/0)"
# Received with a visibility timeout of 0: seen (the count goes up by one), still visible.
seen=$(q sqs receive-message --queue-url "$JOBS" --max-number-of-messages 10 --visibility-timeout 0 \
  --attribute-names ApproximateReceiveCount --query 'Messages[].[Body,Attributes.ApproximateReceiveCount]' | tr '\t' ' ' | sort | paste -sd ' ' -)
expect=$(for n in 1 2 3 4 5; do
  b="job-$n"; [ "$b" = "$TAKEN" ] && continue
  [ "$b" = "$RETRIED_BODY" ] && echo "$b 2" || echo "$b 1"
done | paste -sd ' ' -)
[ "$seen" = "$expect" ] && ok "jobs received now (body, receive count): $seen - $RETRIED_BODY's earlier receive kept, $TAKEN hidden" \
  || bad "jobs received after the load: '$seen' (expected '$expect')"
events=$(q sqs receive-message --queue-url "$EVENTS" --max-number-of-messages 10 --visibility-timeout 0 \
  --message-attribute-names kind --query 'Messages[].[Body,MessageAttributes.kind.StringValue]' | sort | paste -sd ' ' -)
[ "$events" = "event-1	build-1 event-2	build-2 event-3	build-3" ] && ok "events with their attributes: $(tr '\t' '=' <<<"$events")" \
  || bad "events after the load: $events"
# -- the bucket
awsc s3 cp --recursive "s3://$BUCKET/" "$WORK/back" --only-show-errors || true
for key in "${OBJECTS[@]}"; do
  if cmp -s "$WORK/back/$key" "$WORK/up/$key"; then
    ok "s3://$BUCKET/$key: the same $(stat -c %s "$WORK/back/$key") bytes"
  else
    bad "s3://$BUCKET/$key is not back as it was"
  fi
done
meta=$(q s3api head-object --bucket "$BUCKET" --key notes/today.txt --query 'Metadata.[owner,ticket]' 2>&1 | tr '\t' ' ')
[ "$meta" = "dev DEV-44" ] && ok "notes/today.txt metadata: owner=dev ticket=DEV-44" || bad "notes/today.txt metadata: $meta"
# -- the groups and the role
r=$(rules_of "$WEB_SG" "$WORKER_SG" 2>&1 || true)
if [ "$r" = "$RULES" ]; then
  while read -r line; do ok "rules of $line"; done <<<"$r"
else
  bad "security group rules after the load: $(paste -sd '|' - <<<"$r") (before: $(paste -sd '|' - <<<"$RULES"))"
fi
r=$(q iam get-instance-profile --instance-profile-name "$PROFILE" --query 'InstanceProfile.Roles[0].RoleName' 2>&1)
[ "$r" = "$ROLE" ] && ok "instance profile $PROFILE with role $ROLE" || bad "instance profile $PROFILE: $r"
# -- the instances: running again (their per-boot script serves again), files intact
if wait_instances running 60 "$WEB_ID" "$WORKER_ID"; then
  ok "both instances are running again"
else
  bad "the instances are not running after the load"
fi
declare -A IP
while read -r id ip; do IP[$id]=$ip; done < <(q ec2 describe-instances --instance-ids "$WEB_ID" "$WORKER_ID" \
  --query 'Reservations[].Instances[].[InstanceId,PrivateIpAddress]')
for pair in "web $WEB_ID" "worker $WORKER_ID"; do
  read -r name id <<<"$pair"
  ip=${IP[$id]:-none}
  if tok=$(wait_get "http://$ip/token.txt" 60 .); then
    sum=$(curl -sS -f --noproxy '*' -m 5 "http://$ip/blob.bin" | sha256sum | cut -d' ' -f1)
    boots=$(get "http://$ip/boots.log" | wc -l)
    if [ "$tok" = "${TOKEN[$name]}" ] && [ "$sum" = "${BLOBSUM[$name]}" ] && [ "$boots" = 2 ]; then
      ok "$name $id ($ip) serves its disk as saved: token $tok, blob sha256 ${sum:0:16}..., booted twice"
    else
      bad "$name $id: token $tok (saved ${TOKEN[$name]}), blob $sum (saved ${BLOBSUM[$name]}), $boots boots (expected 2)"
    fi
  else
    bad "$name $id ($ip) does not serve its files after the load"
    q ec2 get-console-output --instance-id "$id" --query Output | tail -n 20 >&2 || true
  fi
done
r=$(firewall "${IP[$WORKER_ID]:-none}")
[ "$r" = "worker:80 -> 200, worker:9000 -> dropped" ] && ok "the worker group is enforced again: from this machine $r" \
  || bad "from this machine after the load $r (expected worker:80 -> 200, worker:9000 -> dropped)"
end=$((SECONDS + 30))
while who=$(get "http://${IP[$WEB_ID]:-none}/identity.log" || true); [ "$(grep -c "assumed-role/$ROLE/$WEB_ID" <<<"$who")" -lt 2 ]; do
  [ "$SECONDS" -ge "$end" ] && break
  sleep 0.5
done
if [ "$(grep -c "assumed-role/$ROLE/$WEB_ID" <<<"$who")" = 2 ]; then
  ok "web works as its role again after its second boot: $(tail -n 1 <<<"$who")"
else
  bad "web's identity.log after the load: $(paste -sd '|' - <<<"$who") (expected a second assumed-role/$ROLE/$WEB_ID)"
fi
cfg=$(get "http://$WEB_IP/app.json" || true)
[ "$cfg" = "$(cat "$WORK/up/config/app.json")" ] && ok "web's fetched config is still on its disk" || bad "web's app.json after the load: ${cfg:-nothing}"
console=$(q ec2 get-console-output --instance-id "$WORKER_ID" --query Output 2>/dev/null || true)
grep -q "p44 worker: wrote token ${TOKEN[worker]}" <<<"$console" && ok "worker's console still shows its first boot: p44 worker: wrote token ${TOKEN[worker]}" \
  || bad "worker's console output lost its first boot"
# -- the job in flight: hidden until its deadline, then back with its receive count. Watched
# through the queue's counts (a receive would count).
while :; do
  c=$(queue_counts "$JOBS"); now=$EPOCHREALTIME
  [ "$c" = "5/0" ] && break
  [ "$c" = "4/1" ] && HIDDEN_AT=$now
  if awk -v n="$now" -v u="$TAKEN_UNTIL" 'BEGIN { exit !(n > u + 10) }'; then break; fi
  sleep 0.3
done
hidden=$(since "$TAKEN_UNTIL" "$HIDDEN_AT"); visible=$(since "$TAKEN_UNTIL" "$now")
if [ "$c" = "5/0" ] && awk -v h="$hidden" -v v="$visible" 'BEGIN { exit !(h < 1.5 && v > -1.5) }'; then
  ok "$TAKEN: still hidden at $hidden s, visible at $visible s from the end of its ${INFLIGHT} s timeout"
else
  bad "$TAKEN: hidden at $hidden s, counts $c at $visible s from the end of its ${INFLIGHT} s timeout (expected 5/0 once it ran out)"
fi
got=$(q sqs receive-message --queue-url "$JOBS" --max-number-of-messages 10 --visibility-timeout 0 \
  --attribute-names ApproximateReceiveCount --query 'Messages[].[Body,Attributes.ApproximateReceiveCount]' | tr '\t' ' ' | grep "^$TAKEN " || true)
[ "$got" = "$TAKEN 2" ] && ok "$TAKEN received again: receive count 2 (its receive before the save kept)" \
  || bad "$TAKEN after its timeout: '${got:-not received}' (expected '$TAKEN 2')"

echo
summary
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 44: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 44: all observations hold"
