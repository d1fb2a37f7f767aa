#!/usr/bin/env bash
# Pattern 5, on-demand disk: attach an extra EBS volume, make a file system, mount it,
# write data; snapshot it, make a larger volume from the snapshot, attach that to another
# instance and grow the file system; change the volume's type with ModifyVolume. The data
# survives every step and the file system shows the new size. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Everything made is
# listed as "made:" and removed at the end unless --keep. Exits non-zero if an
# observation fails.
PATTERN_ID=p05

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
GIB=1073741824
step "1. attach a 1 GiB volume, make a file system, mount it, write data"
SG=$(new_group web "pattern 05: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
# Both instances publish what they see in /srv/www/status.txt, rewritten every second:
# the device's size, the file system's size, and whether the data checks out.
STATUS_LOOP='
status() {
  local check
  check=$(cd /data 2>/dev/null && sha256sum --quiet -c data.sha256 >/dev/null 2>&1 && echo OK || echo BAD)
  cat > /srv/www/status.tmp <<STATUS
seq=$n
device-bytes=$(blockdev --getsize64 /dev/sdf 2>/dev/null)
fs-bytes=$(df -B1 --output=size /data 2>/dev/null | tail -n 1 | tr -d " ")
fs-type=$(findmnt -n -o FSTYPE /data)
data-check=$check
files=$(ls /data | tr "\n" " ")
$EXTRA
STATUS
  mv /srv/www/status.tmp /srv/www/status.txt
}
n=0
mkdir -p /srv/www
nohup python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &
while :; do n=$((n + 1)); status; sleep 1; done'
{ echo '#!/bin/bash'; cat <<'UD'
for i in $(seq 300); do [ -b /dev/sdf ] && break; sleep 0.2; done
mkfs.ext4 -q -L p05-data /dev/sdf
mkdir -p /data && mount /dev/sdf /data
head -c 8M /dev/urandom > /data/blob.bin
echo "written on $(hostname) at $(date -u +%FT%TZ)" > /data/notes.txt
(cd /data && sha256sum blob.bin notes.txt > data.sha256)
sync
EXTRA=
UD
  printf '%s\n' "$STATUS_LOOP"; } > "$WORK/first.sh"
# The second instance waits for the larger volume, looks at the file system as it came from
# the snapshot, grows it (offline: e2fsck -f, resize2fs) and mounts it.
{ echo '#!/bin/bash'; cat <<'UD'
for i in $(seq 600); do [ -b /dev/sdf ] && break; sleep 0.2; done
mkdir -p /data
mount /dev/sdf /data
before=$(df -B1 --output=size /data | tail -n 1 | tr -d " ")
before_check=$(cd /data && sha256sum --quiet -c data.sha256 >/dev/null 2>&1 && echo OK || echo BAD)
umount /data
e2fsck -f -y /dev/sdf >/dev/null 2>&1
resize=$(resize2fs /dev/sdf 2>&1 | grep -o "is now [0-9]* (.*) blocks long")
mount /dev/sdf /data
EXTRA="fs-bytes-before-resize=$before
data-check-before-resize=$before_check
resize2fs=$resize"
UD
  printf '%s\n' "$STATUS_LOOP"; } > "$WORK/second.sh"

VOL=$(q ec2 create-volume --availability-zone us-east-1a --size 1 --volume-type gp2 \
  --tag-specifications "ResourceType=volume,Tags=[{Key=Name,Value=$RUN-data},{Key=nimbus-pattern,Value=$RUN}]" \
  --query VolumeId); made volume "$VOL"
out=$(launch first "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/first.sh")
read -r A_ID A_IP <<<"$out"; made instance "$A_ID"
out=$(launch second "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/second.sh")
read -r B_ID B_IP <<<"$out"; made instance "$B_ID"
echo "first instance: $A_ID $A_IP"
echo "second instance: $B_ID $B_IP"
echo "volume: $VOL"
wait_volume "$VOL" available 30
wait_instances running 30 "$A_ID"
awsc ec2 attach-volume --volume-id "$VOL" --instance-id "$A_ID" --device /dev/sdf >/dev/null
field() { sed -n "s/^$1=//p" <<<"$2"; }
if S=$(wait_get "http://$A_IP/status.txt" 40 "data-check=OK"); then
  ok "$A_ID: /dev/sdf is $(field device-bytes "$S") bytes, /data is $(field fs-type "$S") of $(field fs-bytes "$S") bytes"
  ok "$A_ID: data written and checked (sha256): $(field files "$S")"
else
  bad "$A_ID does not report its data at http://$A_IP/status.txt: ${S:-no answer}"
fi
state=$(q ec2 describe-volumes --volume-ids "$VOL" --query 'Volumes[0].[State,Attachments[0].InstanceId,Attachments[0].Device]' | tr '\t' ' ')
[ "$state" = "in-use $A_ID /dev/sdf" ] && ok "DescribeVolumes: $state" || bad "DescribeVolumes: $state (expected in-use $A_ID /dev/sdf)"

step "2. snapshot, a 2 GiB volume from it, attached to a second instance, file system grown"
SNAP=$(q ec2 create-snapshot --volume-id "$VOL" --description "$RUN" \
  --tag-specifications "ResourceType=snapshot,Tags=[{Key=nimbus-pattern,Value=$RUN}]" --query SnapshotId)
made snapshot "$SNAP"
echo "snapshot: $SNAP"
awsc ec2 wait snapshot-completed --snapshot-ids "$SNAP"
ok "snapshot $SNAP completed"
BIG=$(q ec2 create-volume --availability-zone us-east-1a --snapshot-id "$SNAP" --size 2 --volume-type gp2 \
  --tag-specifications "ResourceType=volume,Tags=[{Key=Name,Value=$RUN-bigger},{Key=nimbus-pattern,Value=$RUN}]" \
  --query VolumeId); made volume "$BIG"
echo "bigger volume: $BIG"
wait_volume "$BIG" available 30
read -r size from <<<"$(q ec2 describe-volumes --volume-ids "$BIG" --query 'Volumes[0].[Size,SnapshotId]')"
[ "$size $from" = "2 $SNAP" ] && ok "volume $BIG: 2 GiB from $SNAP" || bad "volume $BIG: $size GiB from $from (expected 2 from $SNAP)"
wait_instances running 30 "$B_ID"
awsc ec2 attach-volume --volume-id "$BIG" --instance-id "$B_ID" --device /dev/sdf >/dev/null
if S=$(wait_get "http://$B_IP/status.txt" 40 "data-check=(OK|BAD)"); then
  dev=$(field device-bytes "$S"); before=$(field fs-bytes-before-resize "$S"); after=$(field fs-bytes "$S")
  [ "$dev" = $((2 * GIB)) ] && ok "$B_ID: /dev/sdf is $dev bytes (2 GiB)" || bad "$B_ID: /dev/sdf is '$dev' bytes (expected $((2 * GIB)))"
  if [ -n "$before" ] && [ "$before" -le "$GIB" ] && [ "$(field data-check-before-resize "$S")" = OK ]; then
    ok "$B_ID: as restored, the file system is still $before bytes and the data checks out"
  else
    bad "$B_ID: before resize2fs: ${before:-?} bytes, data $(field data-check-before-resize "$S")"
  fi
  say "resize2fs: $(field resize2fs "$S")"
  if [ -n "$after" ] && [ "$after" -gt $((GIB * 3 / 2)) ] && [ "$after" -le $((2 * GIB)) ]; then
    ok "$B_ID: after resize2fs the file system is $after bytes (df)"
  else
    bad "$B_ID: after resize2fs the file system is '${after:-?}' bytes (expected about 2 GiB)"
  fi
  [ "$(field data-check "$S")" = OK ] && ok "$B_ID: the data survived the snapshot and the resize: $(field files "$S")" \
    || bad "$B_ID: data check $(field data-check "$S") after the resize"
else
  bad "$B_ID does not report the bigger volume at http://$B_IP/status.txt: ${S:-no answer}"
fi

step "3. ModifyVolume: gp2 -> gp3 while attached and in use"
mod=$(q ec2 modify-volume --volume-id "$BIG" --volume-type gp3 \
  --query 'VolumeModification.[ModificationState,OriginalVolumeType,TargetVolumeType]' | tr '\t' ' ')
say "ModifyVolume: $mod"
for i in $(seq 60); do
  mods=$(q ec2 describe-volumes-modifications --volume-ids "$BIG" \
    --query 'VolumesModifications[0].[ModificationState,OriginalVolumeType,TargetVolumeType,Progress]' | tr '\t' ' ')
  case $mods in completed*|failed*) break ;; esac
  sleep 1
done
[ "$mods" = "completed gp2 gp3 100" ] && ok "DescribeVolumesModifications: $mods" \
  || bad "DescribeVolumesModifications: $mods (expected completed gp2 gp3 100)"
read -r vtype vstate <<<"$(q ec2 describe-volumes --volume-ids "$BIG" --query 'Volumes[0].[VolumeType,State]')"
[ "$vtype $vstate" = "gp3 in-use" ] && ok "DescribeVolumes: $BIG is $vtype, $vstate" || bad "DescribeVolumes: $BIG is $vtype, $vstate (expected gp3, in-use)"
seq0=$(field seq "$(get "http://$B_IP/status.txt" || true)")
if S=$(wait_get "http://$B_IP/status.txt" 10 "seq=$((${seq0:-0} + 2))$") && [ "$(field data-check "$S")" = OK ]; then
  ok "$B_ID: the data still checks out after the type change (status $(field seq "$S"))"
else
  bad "$B_ID: after the type change: ${S:-no answer}"
fi

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 5: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 5: all observations hold"
