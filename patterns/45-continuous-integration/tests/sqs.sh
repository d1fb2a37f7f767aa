#!/usr/bin/env bash
# SQS: a queue, three messages sent in one batch, each received once and deleted, the
# queue empty. Run by ../ci.sh with AWS_ENDPOINT_URL and test keys set; RUN names what
# it makes.
set -euo pipefail
# The endpoint as a flag: the aws CLI v1 ignores AWS_ENDPOINT_URL for some services (SQS
# in us-east-1 goes to queue.amazonaws.com); v2 and the SDKs honour it.
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
url=$(aws sqs create-queue --queue-name "$RUN-jobs" --query QueueUrl --output text)
aws sqs send-message-batch --queue-url "$url" --entries \
  Id=1,MessageBody="job 1" Id=2,MessageBody="job 2" Id=3,MessageBody="job 3" >/dev/null
got=()
for _ in 1 2 3 4 5; do
  out=$(aws sqs receive-message --queue-url "$url" --max-number-of-messages 10 --wait-time-seconds 1 \
        --query 'Messages[].[Body,ReceiptHandle]' --output text)
  entries=()
  while IFS=$'\t' read -r body handle; do
    if [ -z "$body" ] || [ "$body" = None ]; then continue; fi
    got+=("$body")
    entries+=("Id=${#got[@]},ReceiptHandle=$handle")
  done <<<"$out"
  if [ ${#entries[@]} -gt 0 ]; then
    # shellcheck disable=SC2016  # a JMESPath literal, not a shell expansion
    failed=$(aws sqs delete-message-batch --queue-url "$url" --entries "${entries[@]}" --query 'length(Failed || `[]`)' --output text)
    [ "$failed" = 0 ] || { echo "delete-message-batch failed for $failed"; exit 1; }
  fi
  [ ${#got[@]} -ge 3 ] && break
done
sorted=$(printf '%s\n' "${got[@]}" | sort | tr '\n' ',')
[ "$sorted" = "job 1,job 2,job 3," ] || { echo "received: $sorted"; exit 1; }
left=$(aws sqs get-queue-attributes --queue-url "$url" \
       --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
       --query 'Attributes.[ApproximateNumberOfMessages,ApproximateNumberOfMessagesNotVisible]' --output text)
[ "$left" = "$(printf '0\t0')" ] || { echo "left in the queue: $left"; exit 1; }
aws sqs delete-queue --queue-url "$url"
echo "$RUN-jobs: 3 messages sent, each received once and deleted, none left"
