#!/usr/bin/env bash
# Pattern 27, queuing chain: a creator (this script) sends 100 random integers to an input
# queue; a worker instance receives them, computes each one's Fibonacci number, sends the
# result to an output queue and only then deletes the input. One input is marked: the
# worker "crashes" on it the first time (receives it, neither answers nor deletes it), so
# it stays invisible for the input queue's visibility timeout, reappears, and is processed
# then, once. The script checks every one of the 100 results. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances), and python3 with
# boto3: the worker runs on it inside (the host's / is the instance's lower layer), and
# ../lib/sqs_bulk.py sends and reads the 100 messages with it. Everything made is listed as
# "made:" and removed at the end unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p27

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
IN_Q="$RUN-input"
OUT_Q="$RUN-output"
ROLE="$RUN-worker"
PROFILE="$RUN-worker"
VISIBILITY=20   # the input queue's visibility timeout, seconds (long enough to watch it)
COUNT=100

# F(0..92) fit in 64 bits: the integers are drawn from 0..92 so bash can check every result.
FIB=(0 1)
for ((i = 2; i <= 92; i++)); do FIB[i]=$((FIB[i - 1] + FIB[i - 2])); done

step "1. two queues: input (visibility timeout ${VISIBILITY}s) and output"
IN_URL=$(q sqs create-queue --queue-name "$IN_Q" --attributes "VisibilityTimeout=$VISIBILITY" --query QueueUrl)
made queue "$IN_URL"
OUT_URL=$(q sqs create-queue --queue-name "$OUT_Q" --query QueueUrl)
made queue "$OUT_URL"
echo "input queue: $IN_URL"
echo "output queue: $OUT_URL"
read -r IN_ARN vt <<<"$(q sqs get-queue-attributes --queue-url "$IN_URL" --attribute-names QueueArn VisibilityTimeout \
  --query 'Attributes.[QueueArn,VisibilityTimeout]')"
OUT_ARN="${IN_ARN%:*}:$OUT_Q"
[ "$vt" = "$VISIBILITY" ] && ok "input queue $IN_Q: VisibilityTimeout $vt" || bad "input queue VisibilityTimeout is '$vt'"

step "2. the creator sends $COUNT random integers; one of them is marked crash-once"
MARK=$((RANDOM % COUNT))
NUM=()
for ((i = 0; i < COUNT; i++)); do
  NUM[i]=$((RANDOM % 93))
  # one message a line: its body, and for the marked one a message attribute crash-once
  if [ "$i" = "$MARK" ]; then echo "${NUM[i]} crash-once=yes"; else echo "${NUM[i]}"; fi
done > "$WORK/numbers"
# SendMessageBatch, 10 a call (sqs_bulk.py: boto3 in one process); "LINE MESSAGE_ID" back
"$PY" "$BULK" send "$IN_URL" --endpoint-url "$ENDPOINT" < "$WORK/numbers" > "$WORK/sent"
declare -A SENT=()   # message id -> the integer it carries
MARK_ID=""
while read -r i mid; do
  SENT[$mid]=${NUM[i]}
  if [ "$i" = "$MARK" ]; then MARK_ID=$mid; fi
done < "$WORK/sent"
[ "${#SENT[@]}" = "$COUNT" ] && ok "sent $COUNT integers in 0..92 (SendMessageBatch, 10 a call)" \
  || bad "SendMessageBatch accepted ${#SENT[@]} of $COUNT"
echo "marked message: $MARK_ID (n=${SENT[$MARK_ID]:-?}, message attribute crash-once)"
n=$(q sqs get-queue-attributes --queue-url "$IN_URL" --attribute-names ApproximateNumberOfMessages \
  --query Attributes.ApproximateNumberOfMessages)
[ "$n" = "$COUNT" ] && ok "input queue holds $n messages" || bad "input queue holds '$n' messages, not $COUNT"

step "3. a role for the worker: receive and delete on the input, send on the output"
cat > "$WORK/trust.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
cat > "$WORK/queues.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"], "Resource": "$IN_ARN"},
               {"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": "$OUT_ARN"}]}
JSON
awsc iam create-role --role-name "$ROLE" --assume-role-policy-document "file://$WORK/trust.json" >/dev/null; made role "$ROLE"
awsc iam put-role-policy --role-name "$ROLE" --policy-name queues --policy-document "file://$WORK/queues.json"
awsc iam create-instance-profile --instance-profile-name "$PROFILE" >/dev/null; made instance-profile "$PROFILE"
awsc iam add-role-to-instance-profile --instance-profile-name "$PROFILE" --role-name "$ROLE"
ok "role $ROLE (receive/delete on $IN_Q, send on $OUT_Q) in instance profile $PROFILE"

step "4. the worker instance: receive, compute, send the result, then delete the input"
# No keys, no endpoint in here: boto3 gets the role's credentials from the metadata service
# (and, on nimbus, the endpoint and region from the instance's ~/.aws/config).
{ echo '#!/bin/bash'; echo "export PATH=$PY_DIR:\$PATH IN_Q=$IN_Q OUT_Q=$OUT_Q"; cat <<'UD'
cat > /opt/worker.py <<'PY'
import os, time, urllib.request
import boto3

def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

req = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
token = urllib.request.urlopen(req, timeout=5).read().decode()
req = urllib.request.Request("http://169.254.169.254/latest/meta-data/instance-id",
                             headers={"X-aws-ec2-metadata-token": token})
iid = urllib.request.urlopen(req, timeout=5).read().decode()
sqs = boto3.client("sqs")
inq = sqs.get_queue_url(QueueName=os.environ["IN_Q"])["QueueUrl"]
outq = sqs.get_queue_url(QueueName=os.environ["OUT_Q"])["QueueUrl"]
print(f"worker: {iid} polls {inq}", flush=True)
while True:
    try:
        got = sqs.receive_message(
            QueueUrl=inq, MaxNumberOfMessages=10, WaitTimeSeconds=5, MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"])
        now = int(time.time() * 1000)
        results, inputs = [], []
        for m in got.get("Messages", []):
            count = int(m["Attributes"]["ApproximateReceiveCount"])
            first = int(m["Attributes"]["ApproximateFirstReceiveTimestamp"])
            if "crash-once" in m.get("MessageAttributes", {}) and count == 1:
                # as if the worker died here: no result, no delete; the message comes back
                # once its visibility timeout has passed
                print(f"worker: crashed on {m['MessageId']} (n={m['Body']}, receive {count}): not deleted", flush=True)
                continue
            n = int(m["Body"])
            key = str(len(results))
            # result: input message id, n, F(n), receive count, first receive ms, this receive ms, worker
            results.append({"Id": key, "MessageBody": f"{m['MessageId']} {n} {fib(n)} {count} {first} {now} {iid}"})
            inputs.append({"Id": key, "ReceiptHandle": m["ReceiptHandle"]})
        if results:
            sent = sqs.send_message_batch(QueueUrl=outq, Entries=results)
            done = {e["Id"] for e in sent.get("Successful", [])}
            # only an input whose result is safely in the output queue is deleted
            inputs = [e for e in inputs if e["Id"] in done]
            if inputs:
                sqs.delete_message_batch(QueueUrl=inq, Entries=inputs)
            print(f"worker: {len(inputs)} done", flush=True)
    except Exception as e:  # a failed call: the messages come back after the timeout
        print(f"worker: error: {e}", flush=True)
        time.sleep(1)
PY
nohup python3 /opt/worker.py &
UD
} > "$WORK/worker.sh"
out=$(launch worker "" --image-id "$BASE_IMAGE" --iam-instance-profile "Name=$PROFILE" \
  --user-data "file://$WORK/worker.sh")
read -r W_ID W_IP <<<"$out"; made instance "$W_ID"
echo "worker instance: $W_ID $W_IP"
if out=$(wait_console "$W_ID" 40 "worker: $W_ID polls"); then
  ok "console: $(grep -o "worker: $W_ID polls.*" <<<"$out" | tr -d '\r')"
else
  bad "the worker did not start polling; its console:"; tail -n 20 <<<"$out" >&2
fi

step "5. the marked message: received, not deleted, so it stays invisible"
attrs() {  # attrs: "input-visible input-in-flight output-visible output-in-flight"
  local a b
  # the output first: results only grow, so "99 results" read before "1 in flight" means
  # the marked message was still unanswered and in flight when the input was read
  b=$(q sqs get-queue-attributes --queue-url "$OUT_URL" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'Attributes.[ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]')
  a=$(q sqs get-queue-attributes --queue-url "$IN_URL" \
    --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
    --query 'Attributes.[ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]')
  echo "$a $b" | tr '\t' ' '
}
T0=$SECONDS; seen=""; state=""
while [ $((SECONDS - T0)) -lt 60 ]; do
  state=$(attrs)
  read -r iv inf ov _ <<<"$state"
  if [ "$iv $inf $ov" = "0 1 $((COUNT - 1))" ]; then seen=flight; break; fi
  [ "$iv $inf $ov" = "0 0 $COUNT" ] && break
  sleep 0.5
done
if [ "$seen" = flight ]; then
  ok "$((COUNT - 1)) results; the input queue: 0 visible, 1 in flight (the marked message)"
else
  bad "never saw $((COUNT - 1)) results with 1 message in flight (last: input visible/in flight, output visible: ${state:-?})"
fi
if out=$(wait_console "$W_ID" 5 "worker: crashed on $MARK_ID"); then
  ok "console: $(grep -o "worker: crashed on $MARK_ID.*" <<<"$out" | tr -d '\r')"
else
  bad "no 'crashed on $MARK_ID' line on the worker's console"
fi

step "6. after the visibility timeout it reappears and is processed"
T0=$SECONDS
while [ $((SECONDS - T0)) -lt $((VISIBILITY + 30)) ]; do
  state=$(attrs)
  read -r iv inf ov _ <<<"$state"
  [ "$iv $inf $ov" = "0 0 $COUNT" ] && break
  sleep 0.5
done
[ "$iv $inf $ov" = "0 0 $COUNT" ] && ok "input queue empty (0 visible, 0 in flight); output queue holds $COUNT results" \
  || bad "input visible/in flight, output visible: $state (expected 0 0 $COUNT)"

step "7. every result, read from the output queue"
# Each result once (ReceiveMessage until all are in flight, then ChangeMessageVisibility 0
# for all): a look that leaves them in the output queue for the next link of the chain (or
# for you, with --keep). Lines: "MESSAGE_ID SENT_TIMESTAMP RECEIVE_COUNT BODY".
"$PY" "$BULK" peek "$OUT_URL" "$COUNT" --endpoint-url "$ENDPOINT" > "$WORK/peeked" || bad "sqs_bulk.py peek failed"
cut -d' ' -f4- "$WORK/peeked" > "$WORK/results"
total=$(wc -l < "$WORK/results")
[ "$total" = "$COUNT" ] && ok "exactly $COUNT results" || bad "$total results, not $COUNT"
wrong=0; unknown=0; declare -A SEEN=()
while read -r mid n f count first recv worker; do
  if [ -z "${SENT[$mid]+x}" ]; then unknown=$((unknown + 1)); continue; fi
  SEEN[$mid]=$((${SEEN[$mid]:-0} + 1))
  if [ "$n" != "${SENT[$mid]}" ] || [ "$f" != "${FIB[n]}" ]; then
    wrong=$((wrong + 1)); say "wrong: $mid sent ${SENT[$mid]}, result n=$n F=$f (F(${SENT[$mid]}) is ${FIB[${SENT[$mid]}]})"
  fi
  if [ "$mid" = "$MARK_ID" ]; then MARK_LINE="$count $first $recv"; fi
done < "$WORK/results"
dups=0; for mid in "${!SEEN[@]}"; do [ "${SEEN[$mid]}" -gt 1 ] && dups=$((dups + 1)); done
[ "$wrong" = 0 ] && [ "$unknown" = 0 ] && ok "each result is F(n) of the integer its input carried (checked all $total)" \
  || bad "$wrong wrong result(s), $unknown for unknown inputs"
[ "${#SEEN[@]}" = "$COUNT" ] && [ "$dups" = 0 ] && ok "each of the $COUNT inputs answered exactly once" \
  || bad "${#SEEN[@]} inputs answered, $dups more than once"
sample=$(head -n 3 "$WORK/results" | awk '{printf "%sF(%s)=%s", (NR > 1 ? ", " : ""), $2, $3}')
say "e.g. $sample"
if [ -n "${MARK_LINE:-}" ]; then
  read -r count first recv <<<"$MARK_LINE"
  gap=$(( (recv - first) / 1000 ))
  [ "${SEEN[$MARK_ID]}" = 1 ] && [ "$count" = 2 ] && [ "$((recv - first))" -ge $((VISIBILITY * 1000 - 1000)) ] \
    && ok "the marked message was processed once, on its receive 2, ${gap}s after its first receive (visibility timeout ${VISIBILITY}s)" \
    || bad "the marked message: answered ${SEEN[$MARK_ID]} time(s), on receive $count, ${gap}s after the first"
else
  bad "no result for the marked message $MARK_ID"
fi
n=$(q sqs get-queue-attributes --queue-url "$OUT_URL" --attribute-names ApproximateNumberOfMessages \
  --query Attributes.ApproximateNumberOfMessages)
[ "$n" = "$COUNT" ] && ok "after the look the results are visible again: $n in $OUT_Q" \
  || bad "after the look $OUT_Q shows '$n' visible"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 27: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 27: all observations hold"
