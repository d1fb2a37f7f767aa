#!/usr/bin/env bash
# Pattern 29, job observer (the alarm half): a CloudWatch alarm watches a job queue's
# ApproximateNumberOfMessagesVisible (Sum over 1 minute, as AWS/SQS publishes it every
# minute) and goes OK -> ALARM when jobs wait, and back to OK once a worker (this script)
# has drained the queue. The Auto Scaling half (the alarm starting and stopping worker
# instances) follows with Auto Scaling. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# Metrics are published once per cloud minute and alarms evaluated once per cloud minute:
# at `nimbus serve --clock-scale 60` the whole story takes about ten seconds, at scale 1
# (AWS's own pace) a few minutes. Needs bash, curl and the stock aws CLI; no instances.
# Everything made is listed as "made:" and removed at the end unless --keep.
PATTERN_ID=p29
NEEDS_INSTANCES=0

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"

SCALE=$(grep -Eo '"scale" *: *[0-9]+' <<<"$HEALTH" | grep -Eo '[0-9]+$' || echo 1)
# Three cloud minutes for a metric to be published and an alarm to see it, in real seconds.
WAIT=$(( 200 / SCALE + 10 ))
QUEUE="$RUN-jobs"
ALARM="$RUN-backlog"

wait_state() {  # wait_state ALARM STATE SECONDS
  local end=$((SECONDS + $3)) state
  while :; do
    state=$(q cloudwatch describe-alarms --alarm-names "$1" --query 'MetricAlarms[0].StateValue' 2>/dev/null || true)
    [ "$state" = "$2" ] && return 0
    if [ "$SECONDS" -ge "$end" ]; then echo "alarm $1 is ${state:-?}, not $2" >&2; return 1; fi
    sleep 0.2
  done
}

step "1. a job queue, and an alarm on its depth (clock scale $SCALE: waits up to ${WAIT}s)"
URL=$(q sqs create-queue --queue-name "$QUEUE" --query QueueUrl)
made queue "$URL"
echo "job queue: $URL"
awsc cloudwatch put-metric-alarm --alarm-name "$ALARM" --namespace AWS/SQS \
  --metric-name ApproximateNumberOfMessagesVisible --dimensions "Name=QueueName,Value=$QUEUE" \
  --statistic Sum --period 60 --evaluation-periods 1 --threshold 0 \
  --comparison-operator GreaterThanThreshold --treat-missing-data notBreaching
made alarm "$ALARM"
echo "alarm: $ALARM"
wait_state "$ALARM" OK "$WAIT" && ok "an empty queue: the alarm is OK" || bad "the alarm did not reach OK"

step "2. jobs arrive: 20 messages wait in the queue"
for i in 1 2; do
  entries=$(for j in $(seq 1 10); do printf 'Id=j%s,MessageBody=job-%s-%s ' "$j" "$i" "$j"; done)
  # shellcheck disable=SC2086
  awsc sqs send-message-batch --queue-url "$URL" --entries $entries >/dev/null
done
wait_state "$ALARM" ALARM "$WAIT" && ok "jobs are waiting: the alarm is in ALARM" \
  || bad "the alarm did not reach ALARM"
reason=$(q cloudwatch describe-alarms --alarm-names "$ALARM" --query 'MetricAlarms[0].StateReason')
say "$reason"
grep -q "greater than the threshold (0.0)" <<<"$reason" && ok "its reason names the queue depth crossing 0" \
  || bad "unexpected reason: $reason"

step "3. a worker drains the queue"
done_jobs=0
while :; do
  handles=$(q sqs receive-message --queue-url "$URL" --max-number-of-messages 10 --wait-time-seconds 1 \
    --query 'Messages[].ReceiptHandle' 2>/dev/null || true)
  if [ -z "$handles" ] || [ "$handles" = None ]; then break; fi
  for h in $handles; do
    awsc sqs delete-message --queue-url "$URL" --receipt-handle "$h"
    done_jobs=$((done_jobs + 1))
  done
done
[ "$done_jobs" = 20 ] && ok "the worker processed and deleted 20 jobs" || bad "the worker processed $done_jobs jobs"
wait_state "$ALARM" OK "$WAIT" && ok "the queue is empty again: the alarm is back to OK" \
  || bad "the alarm did not return to OK"

step "4. the alarm's history"
history=$(q cloudwatch describe-alarm-history --alarm-name "$ALARM" --history-item-type StateUpdate \
  --scan-by TimestampAscending --query 'AlarmHistoryItems[].HistorySummary' | tr '\t' '\n')
say "$(tr '\n' ';' <<<"$history")"
if grep -q "from INSUFFICIENT_DATA to OK" <<<"$history" && grep -q "from OK to ALARM" <<<"$history" \
  && grep -q "from ALARM to OK" <<<"$history"; then
  ok "history shows OK -> ALARM -> OK"
else
  bad "history: $history"
fi

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 29: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 29: all observations hold"
