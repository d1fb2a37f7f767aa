#!/usr/bin/env bash
# Pattern 2, stamp (machine image): change a running instance, make an image of it with
# CreateImage, and launch new instances from that image. The change (a web page and the
# boot script that serves it) is in every instance launched from the new image and not
# in one launched from the base image. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Everything made is
# listed as "made:" and removed at the end unless --keep. Exits non-zero if an
# observation fails.
PATTERN_ID=p02

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
step "1. change a running instance"
SG=$(new_group web "pattern 02: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
# The change: a page in /srv/stamp and a per-boot script that serves it at every boot
# (cloud-init runs /var/lib/cloud/scripts/per-boot/* at each boot, user data only once).
{ echo '#!/bin/bash'; echo "RUN=$RUN"; cat <<'UD'
mkdir -p /srv/stamp /var/lib/cloud/scripts/per-boot
echo "<h1>stamped by $RUN</h1><p>built on $(curl -s http://169.254.169.254/latest/meta-data/instance-id)</p>" > /srv/stamp/index.html
cat > /var/lib/cloud/scripts/per-boot/50-stamp-web <<'BOOT'
#!/bin/bash
echo "stamp: serving /srv/stamp on port 80"
nohup python3 -m http.server 80 --directory /srv/stamp >/dev/null 2>&1 &
BOOT
chmod 755 /var/lib/cloud/scripts/per-boot/50-stamp-web
/var/lib/cloud/scripts/per-boot/50-stamp-web
UD
} > "$WORK/change.sh"
# Every instance launched later runs this check at its first boot and says on its console
# whether the change is there.
{ echo '#!/bin/bash'; echo "RUN=$RUN"; cat <<'UD'
if [ -e /srv/stamp/index.html ]; then s=present; else s=absent; fi
if [ -x /var/lib/cloud/scripts/per-boot/50-stamp-web ]; then b=present; else b=absent; fi
echo "stamp-check $RUN: page $s, boot script $b"
UD
} > "$WORK/check.sh"
out=$(launch source "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/change.sh")
read -r S_ID S_IP <<<"$out"; made instance "$S_ID"
echo "source instance: $S_ID $S_IP"
if PAGE=$(wait_get "http://$S_IP/" 40 "stamped by $RUN"); then
  ok "the source instance serves its change: $PAGE"
else
  bad "the source instance does not serve its change at http://$S_IP/ (${PAGE:-no answer})"
fi

step "2. CreateImage from the changed instance"
IMAGE=$(q ec2 create-image --instance-id "$S_ID" --name "$RUN-web" --description "pattern 02 stamp" \
  --tag-specifications "ResourceType=image,Tags=[{Key=nimbus-pattern,Value=$RUN}]" --query ImageId)
made image "$IMAGE"
echo "image: $IMAGE"
seen=""
for i in $(seq 120); do
  state=$(q ec2 describe-images --image-ids "$IMAGE" --query 'Images[0].State')
  case " $seen " in *" $state "*) ;; *) seen="$seen $state" ;; esac
  [ "$state" = available ] && break
  sleep 0.5
done
[ "$state" = available ] && ok "image $IMAGE:$seen" || bad "image $IMAGE is $state after a minute (seen:$seen)"
# CreateImage reboots the instance (no --no-reboot): its boot script brings the page back.
for i in $(seq 60); do
  boots=$(q ec2 get-console-output --instance-id "$S_ID" --query Output | grep -c 'Cloud-init v\. .* finished at' || true)
  [ "$boots" -ge 2 ] && break
  sleep 0.5
done
[ "$boots" -ge 2 ] && ok "CreateImage rebooted the source instance (its console shows $boots boots)" \
  || bad "the source instance's console shows $boots boot(s) after CreateImage (expected a reboot)"
if wait_get "http://$S_IP/" 30 "stamped by $RUN" >/dev/null; then ok "after the reboot its boot script serves the page again"
else bad "the source instance does not serve after CreateImage's reboot"; fi

step "3. two instances from the new image, one from the base image"
out=$(launch stamped-1 "" --image-id "$IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/check.sh")
read -r N1_ID N1_IP <<<"$out"; made instance "$N1_ID"
out=$(launch stamped-2 "" --image-id "$IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/check.sh")
read -r N2_ID N2_IP <<<"$out"; made instance "$N2_ID"
out=$(launch plain "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/check.sh")
read -r P_ID P_IP <<<"$out"; made instance "$P_ID"
echo "from the image: $N1_ID $N1_IP"
echo "from the image: $N2_ID $N2_IP"
echo "from the base image: $P_ID $P_IP"
for pair in "$N1_ID $N1_IP" "$N2_ID $N2_IP"; do
  read -r id ip <<<"$pair"
  if got=$(wait_get "http://$ip/" 40 "stamped by $RUN"); then
    [ "$got" = "$PAGE" ] && ok "$id (from $IMAGE) serves the change: $got" || bad "$id serves '$got', not the source's page '$PAGE'"
  else
    bad "$id (from $IMAGE) does not serve the change at http://$ip/ (${got:-no answer})"
  fi
  if c=$(wait_console "$id" 20 "stamp-check $RUN: "); then
    line=$(grep -o "stamp-check $RUN: .*" <<<"$c" | tr -d '\r')
    [ "$line" = "stamp-check $RUN: page present, boot script present" ] && ok "$id console: $line" || bad "$id console: $line"
  else
    bad "$id: no stamp-check line on the console"
  fi
done
if c=$(wait_console "$P_ID" 30 "stamp-check $RUN: "); then
  line=$(grep -o "stamp-check $RUN: .*" <<<"$c" | tr -d '\r')
  [ "$line" = "stamp-check $RUN: page absent, boot script absent" ] && ok "$P_ID (from the base image) console: $line" \
    || bad "$P_ID (from the base image) console: $line"
else
  bad "$P_ID: no stamp-check line on the console"
fi
c=$(code "http://$P_IP/")
[ "$c" = 000 ] && ok "$P_ID (from the base image) serves nothing: http://$P_IP/ does not answer" \
  || bad "$P_ID (from the base image) answers http://$P_IP/ with $c"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 2: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 2: all observations hold"
