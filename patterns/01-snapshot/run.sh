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

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
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
