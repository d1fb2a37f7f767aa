#!/usr/bin/env bash
# Pattern 33, monitoring integration (the metrics half): metrics of what runs in the cloud
# (an instance's CPU, a queue's depth and traffic) land in CloudWatch without anyone pushing
# them, stay queryable as long as the user decides (--metrics-retention), and leave in a
# standard format: Prometheus text at /_nimbus/metrics, which promtool accepts. Logs in
# CloudWatch Logs come with that service. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# Metrics are published once per cloud minute: at `nimbus serve --clock-scale 60` the run
# takes under a minute, at scale 1 a few minutes. Runs with either instance driver. Needs
# bash, curl and the stock aws CLI; promtool (Debian package prometheus) when present.
# Everything made is listed as "made:" and removed at the end unless --keep.
PATTERN_ID=p33
NEEDS_INSTANCES=0

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"

SCALE=$(grep -Eo '"scale" *: *[0-9]+' <<<"$HEALTH" | grep -Eo '[0-9]+$' || echo 1)
WAIT=$(( 400 / SCALE + 20 ))   # a few cloud minutes, in real seconds
QUEUE="$RUN-orders"
cloud_now() { curl -sS --noproxy '*' "$ENDPOINT/_nimbus/health" | grep -Eo '"now_ms" *: *[0-9]+' | grep -Eo '[0-9]+$'; }
iso() { date -u -d "@$(( $1 / 1000 ))" +%Y-%m-%dT%H:%M:%SZ; }
wait_metric() {  # wait_metric NAMESPACE METRIC STAT DIMENSION SECONDS [JMESPATH [WANT]]
  # prints the newest datapoint's STAT (or JMESPATH over the last hour's datapoints) once
  # there is one (equal to WANT when given)
  local end=$((SECONDS + $5)) v now expr=${6:-"sort_by(Datapoints,&Timestamp)[-1].$3"}
  while :; do
    now=$(cloud_now)
    v=$(q cloudwatch get-metric-statistics --namespace "$1" --metric-name "$2" --dimensions "$4" \
      --statistics "$3" --period 60 --start-time "$(iso $((now - 3600000)))" --end-time "$(iso $((now + 60000)))" \
      --query "$expr" 2>/dev/null || true)
    if [ -n "$v" ] && [ "$v" != None ] && { [ -z "${7:-}" ] || [ "$v" = "$7" ]; }; then
      printf '%s' "$v"; return 0
    fi
    if [ "$SECONDS" -ge "$end" ]; then printf '%s' "$v"; return 1; fi
    sleep 0.5
  done
}

step "1. things that run: a busy instance with detailed monitoring, and a queue with traffic"
read -r IID _ < <(launch busy "" --image-id "$BASE_IMAGE" --monitoring Enabled=true \
  --user-data $'#!/bin/sh\nwhile :; do :; done\n')
made instance "$IID"
wait_instances running 60 "$IID" && ok "instance $IID is running" || bad "instance $IID did not start"
URL=$(q sqs create-queue --queue-name "$QUEUE" --query QueueUrl)
made queue "$URL"
for i in $(seq 1 7); do awsc sqs send-message --queue-url "$URL" --message-body "order-$i" >/dev/null; done
say "sent 7 orders to $QUEUE (clock scale $SCALE: waits up to ${WAIT}s)"

step "2. their metrics, published by the cloud itself"
cpu=$(wait_metric AWS/EC2 CPUUtilization Maximum "Name=InstanceId,Value=$IID" "$WAIT") \
  && ok "AWS/EC2 CPUUtilization of $IID: $cpu %" || bad "no CPUUtilization for $IID"
sent=$(wait_metric AWS/SQS NumberOfMessagesSent Sum "Name=QueueName,Value=$QUEUE" "$WAIT" \
  'sum(Datapoints[].Sum)' 7.0) \
  && ok "AWS/SQS NumberOfMessagesSent of $QUEUE over the last hour: $sent" \
  || bad "NumberOfMessagesSent of $QUEUE: ${sent:-none}, not 7"
depth=$(wait_metric AWS/SQS ApproximateNumberOfMessagesVisible Maximum "Name=QueueName,Value=$QUEUE" "$WAIT") \
  && ok "AWS/SQS ApproximateNumberOfMessagesVisible of $QUEUE: $depth" || bad "no queue depth for $QUEUE"
listed=$(q cloudwatch list-metrics --namespace AWS/SQS --dimensions "Name=QueueName,Value=$QUEUE" \
  --query 'length(Metrics)')
[ "$listed" -ge 9 ] && ok "list-metrics shows the queue's $listed AWS/SQS metrics" || bad "list-metrics shows $listed"

step "3. retention under the user's control"
now=$(cloud_now)
old=$(( (now - 13 * 86400000) / 60000 * 60000 ))
awsc cloudwatch put-metric-data --namespace "$RUN/App" --metric-data \
  "[{\"MetricName\":\"Latency\",\"Unit\":\"Milliseconds\",\"Timestamp\":\"$(iso "$old")\",\"Values\":[12,15,90],\"StorageResolution\":1}]"
minute=$(q cloudwatch get-metric-statistics --namespace "$RUN/App" --metric-name Latency \
  --statistics Maximum --period 60 --start-time "$(iso "$old")" --end-time "$(iso $((old + 60000)))" \
  --query 'Datapoints[0].Maximum')
[ "$minute" = "90.0" ] && ok "13-day-old data answers at 1-minute periods (kept 15 days, as AWS keeps them)" \
  || bad "13-day-old data at 1-minute periods: $minute"
raw=$(q cloudwatch get-metric-statistics --namespace "$RUN/App" --metric-name Latency \
  --extended-statistics p50 --period 1 --start-time "$(iso "$old")" --end-time "$(iso $((old + 1000)))" \
  --query 'Datapoints[0].ExtendedStatistics.p50' 2>&1 || true)
if [ "$raw" = "15.0" ]; then
  ok "raw 1-second data is kept too: this nimbus runs with --metrics-retention of 13 days or more"
else
  ok "raw 1-second data is gone after 3 hours, as AWS does; nimbus serve --metrics-retention 30d keeps it"
  say "(answer at 1-second periods: $raw)"
fi

step "4. export in a standard format: Prometheus text at /_nimbus/metrics"
export_text=$(curl -sS --noproxy '*' "$ENDPOINT/_nimbus/metrics")
grep -E "^aws_sqs_number_of_messages_sent\{[^}]*queue_name=\"$QUEUE\"[^}]*statistic=\"sum\"" <<<"$export_text" \
  | head -n 1 | sed 's/^/        /'
grep -Eq "^aws_ec2_cpu_utilization\{[^}]*instance_id=\"$IID\"" <<<"$export_text" \
  && ok "the instance's CPU is in the export" || bad "no aws_ec2_cpu_utilization for $IID in the export"
grep -Eq "^aws_sqs_number_of_messages_sent\{[^}]*queue_name=\"$QUEUE\"" <<<"$export_text" \
  && ok "the queue's traffic is in the export" || bad "no aws_sqs_number_of_messages_sent for $QUEUE"
if command -v promtool >/dev/null 2>&1; then
  problems=$(promtool check metrics <<<"$export_text" 2>&1) && ok "promtool check metrics accepts the export" \
    || bad "promtool: $problems"
else
  say "promtool is not installed (Debian: apt-get install prometheus); not checked"
fi
say "Prometheus: scrape_configs: [{job_name: nimbus, metrics_path: /_nimbus/metrics, static_configs: [{targets: ['${ENDPOINT#http://}']}]}]"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 33: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 33: all observations hold"
