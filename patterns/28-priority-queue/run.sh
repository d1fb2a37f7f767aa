#!/usr/bin/env bash
# Pattern 28, priority queue: one pool of worker instances polls two queues, a priority
# queue and a normal one, with weights 2:1 (per round: two receives on the priority queue,
# one on the normal queue). With both queues loaded, the priority jobs are done first and
# the normal jobs still move while they are (no starvation). Each worker sends a result per
# job to a results queue, stamped with the time the job was done; the script reads them
# all and measures the order. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances), and python3 with
# boto3: the workers run on it inside (the host's / is the instances' lower layer), and
# ../lib/sqs_bulk.py sends and reads the jobs and results with it. Everything made is
# listed as "made:" and removed at the end unless --keep. Exits non-zero if an observation
# fails.
PATTERN_ID=p28

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
# python3 with boto3: the workers run on it, and sqs_bulk.py sends and reads the messages
# in one process; on nimbus, the instances find it where this machine does (the host's / is
# their lower layer), next to a pip-installed aws CLI or on PATH.
PY=$(PATH="$(dirname "$(command -v aws)"):$PATH" command -v python3 || true)
if [ -z "$PY" ] || ! "$PY" -c 'import boto3' 2>/dev/null; then
  echo "this example needs python3 with boto3 (pip install boto3)" >&2; exit 2
fi
PY_DIR=$(dirname "$PY")
BULK="$HERE/../lib/sqs_bulk.py"
ROLE="$RUN-worker"
PROFILE="$RUN-worker"
JOBS=40        # jobs in each of the two queues
WORKERS=2      # instances in the pool
FIRST=30       # the mix is reported over the first FIRST results
TOTAL=$((2 * JOBS))

step "1. three queues: priority, normal, results"
P_URL=$(q sqs create-queue --queue-name "$RUN-priority" --query QueueUrl); made queue "$P_URL"
N_URL=$(q sqs create-queue --queue-name "$RUN-normal" --query QueueUrl); made queue "$N_URL"
R_URL=$(q sqs create-queue --queue-name "$RUN-results" --query QueueUrl); made queue "$R_URL"
echo "priority queue: $P_URL"
echo "normal queue: $N_URL"
echo "results queue: $R_URL"
P_ARN=$(q sqs get-queue-attributes --queue-url "$P_URL" --attribute-names QueueArn --query Attributes.QueueArn)
ARN_PREFIX=${P_ARN%:*}

step "2. load both queues: $JOBS jobs each"
# SendMessageBatch, 10 a call (sqs_bulk.py: boto3 in one process)
for ((i = 1; i <= JOBS; i++)); do printf 'P-%02d\n' "$i"; done | "$PY" "$BULK" send "$P_URL" --endpoint-url "$ENDPOINT" >/dev/null
for ((i = 1; i <= JOBS; i++)); do printf 'N-%02d\n' "$i"; done | "$PY" "$BULK" send "$N_URL" --endpoint-url "$ENDPOINT" >/dev/null
depth() {  # depth QUEUE_URL: "visible in-flight"
  q sqs get-queue-attributes --queue-url "$1" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'Attributes.[ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]' | tr '\t' ' '
}
p=$(depth "$P_URL"); n=$(depth "$N_URL")
[ "$p" = "$JOBS 0" ] && [ "$n" = "$JOBS 0" ] && ok "priority queue holds $JOBS jobs (P-01..), normal queue holds $JOBS (N-01..)" \
  || bad "queues hold priority '$p', normal '$n' (visible in-flight), not $JOBS each"

step "3. a role for the workers: take jobs from both queues, send results"
cat > "$WORK/trust.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
cat > "$WORK/queues.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
                "Resource": ["$ARN_PREFIX:$RUN-priority", "$ARN_PREFIX:$RUN-normal"]},
               {"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": "$ARN_PREFIX:$RUN-results"}]}
JSON
awsc iam create-role --role-name "$ROLE" --assume-role-policy-document "file://$WORK/trust.json" >/dev/null; made role "$ROLE"
awsc iam put-role-policy --role-name "$ROLE" --policy-name queues --policy-document "file://$WORK/queues.json"
awsc iam create-instance-profile --instance-profile-name "$PROFILE" >/dev/null; made instance-profile "$PROFILE"
awsc iam add-role-to-instance-profile --instance-profile-name "$PROFILE" --role-name "$ROLE"
ok "role $ROLE in instance profile $PROFILE"

step "4. the pool: $WORKERS worker instances, polling priority:normal = 2:1"
# No keys, no endpoint in here: boto3 gets the role's credentials from the metadata service
# (and, on nimbus, the endpoint and region from the instance's ~/.aws/config).
{ echo '#!/bin/bash'
  echo "export PATH=$PY_DIR:\$PATH WEIGHTS='$RUN-priority:2 $RUN-normal:1' RESULTS=$RUN-results"
  cat <<'UD'
cat > /opt/worker.py <<'PY'
import os, time, urllib.request
import boto3

req = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
token = urllib.request.urlopen(req, timeout=5).read().decode()
req = urllib.request.Request("http://169.254.169.254/latest/meta-data/instance-id",
                             headers={"X-aws-ec2-metadata-token": token})
iid = urllib.request.urlopen(req, timeout=5).read().decode()
sqs = boto3.client("sqs")
# one round: each queue as many receives as its weight ("P:2 N:1" -> P, P, N)
weights = [(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in os.environ["WEIGHTS"].split()]
url = {name: sqs.get_queue_url(QueueName=name)["QueueUrl"] for name, _ in weights}
results = sqs.get_queue_url(QueueName=os.environ["RESULTS"])["QueueUrl"]
rounds = [name for name, w in weights for _ in range(w)]
print(f"worker: {iid} polls {' '.join(rounds)}", flush=True)
done = 0
while True:
    try:
        idle = True
        for name in rounds:
            got = sqs.receive_message(QueueUrl=url[name], MaxNumberOfMessages=1, WaitTimeSeconds=0)
            for m in got.get("Messages", []):
                idle = False
                time.sleep(0.05)  # the job itself
                done += 1
                # result: job, the time it was done (ns), worker, the worker's own count
                sqs.send_message(QueueUrl=results, MessageBody=f"{m['Body']} {time.time_ns()} {iid} {done}")
                sqs.delete_message(QueueUrl=url[name], ReceiptHandle=m["ReceiptHandle"])
        if idle:
            time.sleep(0.2)
    except Exception as e:  # a failed call: the job comes back after its visibility timeout
        print(f"worker: error: {e}", flush=True)
        time.sleep(1)
PY
nohup python3 /opt/worker.py &
UD
} > "$WORK/worker.sh"
W_IDS=()
for ((w = 1; w <= WORKERS; w++)); do
  out=$(launch "worker-$w" "" --image-id "$BASE_IMAGE" --iam-instance-profile "Name=$PROFILE" \
    --user-data "file://$WORK/worker.sh")
  read -r id ip <<<"$out"; made instance "$id"; W_IDS+=("$id")
  echo "worker instance: $id $ip"
done
for id in "${W_IDS[@]}"; do
  if out=$(wait_console "$id" 40 "worker: $id polls"); then
    ok "console: $(grep -o "worker: $id polls.*" <<<"$out" | sed "s/$RUN-//g" | tr -d '\r')"
  else
    bad "worker $id did not start polling; its console:"; tail -n 20 <<<"$out" >&2
  fi
done

step "5. both queues drain"
T0=$SECONDS
while :; do
  p=$(depth "$P_URL"); n=$(depth "$N_URL")
  [ "$p $n" = "0 0 0 0" ] && break
  if [ $((SECONDS - T0)) -ge 60 ]; then break; fi
  sleep 0.5
done
[ "$p $n" = "0 0 0 0" ] && ok "priority and normal queues are empty (0 visible, 0 in flight)" \
  || bad "after 60s the queues hold priority '$p', normal '$n' (visible in-flight)"

step "6. the order of the results"
# Each result once (ReceiveMessage until all are in flight, then ChangeMessageVisibility 0
# for all): a look that leaves them in the results queue (for you, with --keep).
# Lines: "MESSAGE_ID SENT_TIMESTAMP RECEIVE_COUNT JOB DONE_NS WORKER WORKER_COUNT".
"$PY" "$BULK" peek "$R_URL" "$TOTAL" --endpoint-url "$ENDPOINT" > "$WORK/peeked" || bad "sqs_bulk.py peek failed"
cut -d' ' -f4- "$WORK/peeked" > "$WORK/results"
sort -k2,2n "$WORK/results" > "$WORK/ordered"   # by the time each job was done
jobs=$(cut -d' ' -f1 "$WORK/ordered" | sort -u | wc -l)
[ "$(wc -l < "$WORK/ordered")" = "$TOTAL" ] && [ "$jobs" = "$TOTAL" ] \
  && ok "$TOTAL results, every job done once" || bad "$(wc -l < "$WORK/ordered") results for $jobs distinct jobs, not $TOTAL"
say "order: $(cut -c1 "$WORK/ordered" | tr -d '\n')"
for id in "${W_IDS[@]}"; do say "$id did $(grep -c " $id " "$WORK/ordered" || true) jobs"; done
# LAST_P: position of the last priority job; N_BEFORE: normal jobs done before it
read -r FIRST_P FIRST_N LAST_P LAST_N N_BEFORE <<<"$(awk -v first="$FIRST" '
  { kind = substr($1, 1, 1) }
  NR <= first && kind == "P" { fp++ }
  NR <= first && kind == "N" { fn++ }
  kind == "P" { lp = NR; nb = nn }
  kind == "N" { ln = NR; nn++ }
  END { print fp + 0, fn + 0, lp + 0, ln + 0, nb + 0 }' "$WORK/ordered")"
echo "first $FIRST results: $FIRST_P priority, $FIRST_N normal"
echo "last priority result: #$LAST_P, with $N_BEFORE normal before it; last normal result: #$LAST_N"
# 2:1 makes it about two thirds priority, one third normal.
[ "$FIRST_P" -gt $((FIRST / 2)) ] && [ "$FIRST_N" -ge $((FIRST / 6)) ] \
  && ok "first $FIRST results: $FIRST_P priority, $FIRST_N normal (weights 2:1)" \
  || bad "first $FIRST results: $FIRST_P priority, $FIRST_N normal"
[ "$LAST_P" -lt "$LAST_N" ] && [ "$LAST_N" = "$TOTAL" ] \
  && ok "the priority queue drained first: its last job is result #$LAST_P of $TOTAL, $((JOBS - N_BEFORE)) normal jobs were still left" \
  || bad "the priority queue did not drain first: last priority #$LAST_P, last normal #$LAST_N"
# With 2:1, N_BEFORE is about JOBS/2; a strict priority would leave it near 0 (starving).
[ "$N_BEFORE" -ge $((JOBS / 4)) ] && [ $((2 * N_BEFORE)) -le $((JOBS * 3 / 2)) ] \
  && ok "no starvation: $N_BEFORE normal jobs were done while the priority queue drained ($JOBS priority : $N_BEFORE normal)" \
  || bad "$N_BEFORE normal jobs done while the $JOBS priority ones were (about $((JOBS / 2)) expected with 2:1)"
r=$(depth "$R_URL")
[ "$r" = "$TOTAL 0" ] && ok "after the look the results are visible again: $TOTAL in $RUN-results" \
  || bad "after the look the results queue shows '$r' (visible in-flight)"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 28: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 28: all observations hold"
