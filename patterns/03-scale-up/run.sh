#!/usr/bin/env bash
# Pattern 3, scale up: stop an instance, change its instance type (t2.micro -> t2.small)
# with ModifyInstanceAttribute, start it again. Inside, the memory limit and the
# instance type the metadata service reports follow the type; the data written before
# the change is still there. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Everything made is
# listed as "made:" and removed at the end unless --keep. Exits non-zero if an
# observation fails.
PATTERN_ID=p03

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
# What each instance type gives (EC2 instance types: t2.micro 1 vCPU / 1 GiB, t2.small 1 vCPU / 2 GiB).
declare -A MEMORY=([t2.micro]=1073741824 [t2.small]=2147483648)
declare -A VCPUS=([t2.micro]=1 [t2.small]=1)

step "1. a t2.micro that reports what it sees at every boot"
SG=$(new_group web "pattern 03: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
TOKEN="data-$RUN-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
# User data runs at the first boot only: it writes the data and installs a per-boot script,
# which cloud-init runs at every boot, to publish the instance's view over HTTP.
{ echo '#!/bin/bash'; echo "TOKEN=$TOKEN"; cat <<'UD'
mkdir -p /var/lib/p03 /srv/www /var/lib/cloud/scripts/per-boot
echo "$TOKEN" > /var/lib/p03/data.txt
cat > /var/lib/cloud/scripts/per-boot/50-status <<'BOOT'
#!/bin/bash
if [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then      # cgroup v1
  mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
  cpu="$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
else                                                             # cgroup v2
  mem=$(cat /sys/fs/cgroup/memory.max)
  cpu=$(cat /sys/fs/cgroup/cpu.max)
fi
echo boot >> /var/lib/p03/boots
cat > /srv/www/status.tmp <<STATUS
instance-type=$(curl -s http://169.254.169.254/latest/meta-data/instance-type)
memory-limit=$mem
cpu-max=$cpu
data=$(cat /var/lib/p03/data.txt)
boots=$(wc -l < /var/lib/p03/boots)
STATUS
mv /srv/www/status.tmp /srv/www/status.txt
nohup python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &
BOOT
chmod 755 /var/lib/cloud/scripts/per-boot/50-status
/var/lib/cloud/scripts/per-boot/50-status
UD
} > "$WORK/user-data.sh"
out=$(launch box "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/user-data.sh")
read -r ID IP <<<"$out"; made instance "$ID"
echo "instance: $ID $IP"

field() { sed -n "s/^$1=//p" <<<"$2"; }
check_view() {  # check_view TYPE BOOTS STATUS
  local t=$1 boots=$2 s=$3 mem cpu quota period
  [ "$(field instance-type "$s")" = "$t" ] && ok "metadata service: instance-type $t" \
    || bad "metadata service says instance-type '$(field instance-type "$s")' (expected $t)"
  mem=$(field memory-limit "$s")
  [ "$mem" = "${MEMORY[$t]}" ] && ok "memory limit inside: $mem bytes ($((mem / 1048576)) MiB)" \
    || bad "memory limit inside: '$mem' (expected ${MEMORY[$t]} for $t)"
  cpu=$(field cpu-max "$s"); read -r quota period <<<"$cpu"
  if [ "$quota" != max ] && [ -n "$period" ] && [ "$((quota / period))" = "${VCPUS[$t]}" ]; then
    ok "CPU limit inside: $quota/$period us = ${VCPUS[$t]} vCPU"
  else
    bad "CPU limit inside: '$cpu' (expected ${VCPUS[$t]} vCPU for $t)"
  fi
  [ "$(field data "$s")" = "$TOKEN" ] && ok "data written at the first boot: $TOKEN" \
    || bad "data: '$(field data "$s")' (expected $TOKEN)"
  [ "$(field boots "$s")" = "$boots" ] && ok "boots seen by the instance: $boots" || bad "boots: '$(field boots "$s")' (expected $boots)"
}
if S=$(wait_get "http://$IP/status.txt" 40 "boots=1"); then
  check_view t2.micro 1 "$S"
else
  bad "the instance does not publish its status at http://$IP/status.txt (${S:-no answer})"
fi

step "2. stop, change the type to t2.small, start"
awsc ec2 stop-instances --instance-ids "$ID" >/dev/null
if wait_instances stopped 60 "$ID"; then ok "stopped"; else bad "the instance did not stop"; fi
c=$(code "http://$IP/status.txt" 1)
[ "$c" = 000 ] && ok "nothing answers at $IP while it is stopped" || bad "http://$IP/ answers $c while stopped"
awsc ec2 modify-instance-attribute --instance-id "$ID" --instance-type Value=t2.small
awsc ec2 start-instances --instance-ids "$ID" >/dev/null
if wait_instances running 60 "$ID"; then ok "running again"; else bad "the instance did not start"; fi
read -r TYPE IP2 <<<"$(q ec2 describe-instances --instance-ids "$ID" --query 'Reservations[0].Instances[0].[InstanceType,PrivateIpAddress]')"
[ "$TYPE" = t2.small ] && ok "DescribeInstances: InstanceType $TYPE" || bad "DescribeInstances: InstanceType $TYPE (expected t2.small)"
[ "$IP2" = "$IP" ] && ok "private IP kept: $IP2" || bad "private IP changed: $IP -> $IP2"

step "3. what the instance sees after the change"
if S=$(wait_get "http://$IP/status.txt" 40 "boots=2"); then
  check_view t2.small 2 "$S"
else
  bad "the instance does not publish its second boot at http://$IP/status.txt (${S:-no answer})"
fi

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 3: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 3: all observations hold"
