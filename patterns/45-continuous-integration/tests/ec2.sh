#!/usr/bin/env bash
# EC2: an instance whose user data runs (its console shows it) and starts a daemon; the
# instance is left running on purpose, so that stopping nimbus must end it.
# Run by ../ci.sh with AWS_ENDPOINT_URL and test keys set; RUN names what it makes; the
# instance id goes to $SCRATCH/instance for ci.sh's checks after the stop.
set -euo pipefail
# The endpoint as a flag: the aws CLI v1 ignores AWS_ENDPOINT_URL for some services (SQS
# in us-east-1 goes to queue.amazonaws.com); v2 and the SDKs honour it.
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
image=$(aws ec2 describe-images --owners amazon --filters Name=name,Values=nimbus/host-root \
        --query 'Images[0].ImageId' --output text)
cat > "$SCRATCH/user-data.sh" <<UD
#!/bin/sh
echo "user data of $RUN ran"
nohup sh -c 'while :; do sleep 1; done' daemon-$RUN >/dev/null 2>&1 &
UD
id=$(aws ec2 run-instances --image-id "$image" --instance-type t2.micro --count 1 \
     --user-data "file://$SCRATCH/user-data.sh" --query 'Instances[0].InstanceId' --output text)
echo "$id" > "$SCRATCH/instance"
for _ in $(seq 100); do
  state=$(aws ec2 describe-instances --instance-ids "$id" --query 'Reservations[0].Instances[0].State.Name' --output text)
  console=$(aws ec2 get-console-output --instance-id "$id" --query Output --output text)
  if [ "$state" = running ] && grep -q "user data of $RUN ran" <<<"$console"; then
    echo "$id: running, its console shows: user data of $RUN ran (left running for the stop)"
    exit 0
  fi
  sleep 0.3
done
echo "$id is ${state:-?}; console: $console"
exit 1
