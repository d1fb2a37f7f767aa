#!/usr/bin/env bash
# Pattern 8, floating IP: an Elastic IP moves between two identical web servers. The
# same address answers from instance A, then (AssociateAddress to B) from B, then from
# A again; the swap itself is the only downtime. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances; Elastic IPs come
# from 127.100.0.0/16 and are forwarded to the associated instance). Everything made is
# listed as "made:" and removed at the end unless --keep. Exits non-zero if an
# observation fails.
PATTERN_ID=p08

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
step "1. two identical web servers, A and B"
SG=$(new_group web "pattern 08: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
# The same user data on both (B is a clone of A): serve a page naming the instance.
cat > "$WORK/web.sh" <<'UD'
#!/bin/bash
mkdir -p /srv/www
echo "served by $(curl -s http://169.254.169.254/latest/meta-data/instance-id)" > /srv/www/index.html
nohup python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &
UD
out=$(launch a "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/web.sh")
read -r A_ID A_IP <<<"$out"; made instance "$A_ID"
out=$(launch b "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" --user-data "file://$WORK/web.sh")
read -r B_ID B_IP <<<"$out"; made instance "$B_ID"
echo "instance A: $A_ID $A_IP"
echo "instance B: $B_ID $B_IP"
for pair in "$A_ID $A_IP" "$B_ID $B_IP"; do
  read -r id ip <<<"$pair"
  page=$(wait_get "http://$ip/" 40 "served by $id") && ok "$id serves at its private IP: $page" \
    || bad "$id does not serve at http://$ip/ (${page:-no answer})"
done

step "2. allocate an Elastic IP"
read -r ALLOC EIP <<<"$(q ec2 allocate-address --domain vpc \
  --tag-specifications "ResourceType=elastic-ip,Tags=[{Key=nimbus-pattern,Value=$RUN}]" --query '[AllocationId,PublicIp]')"
made address "$ALLOC"
echo "elastic IP: $EIP ($ALLOC)"
c=$(code "http://$EIP/" 2)
[ "$c" = 000 ] && ok "nothing answers at http://$EIP/ before an association" || bad "http://$EIP/ answers $c before any association"

now_ms() { date +%s%3N; }
move_to() {  # move_to NAME ID: associates the address, then times until it answers from ID
  local name=$1 id=$2 t0 t1 body tries=0
  q ec2 associate-address --allocation-id "$ALLOC" --instance-id "$id" --allow-reassociation --query AssociationId >/dev/null
  t0=$(now_ms)
  while :; do
    tries=$((tries + 1))
    body=$(get "http://$EIP/" 2 || true)
    [ "$body" = "served by $id" ] && break
    [ $(( $(now_ms) - t0 )) -gt 10000 ] && break
    sleep 0.05
  done
  t1=$(now_ms)
  if [ "$body" = "served by $id" ]; then
    ok "http://$EIP/ answers from $name: \"$body\" ($((t1 - t0)) ms after AssociateAddress returned, request $tries)"
  else
    bad "http://$EIP/ does not answer from $name ($id) 10 s after AssociateAddress: '${body}'"
  fi
  got=$(q ec2 describe-addresses --allocation-ids "$ALLOC" --query 'Addresses[0].[InstanceId,PrivateIpAddress]' | tr '\t' ' ')
  [ "$got" = "$id $(q ec2 describe-instances --instance-ids "$id" --query 'Reservations[0].Instances[0].PrivateIpAddress')" ] \
    && ok "DescribeAddresses: $EIP -> $got" || bad "DescribeAddresses: $EIP -> $got (expected $id)"
}

step "3. associate with A"
move_to A "$A_ID"
step "4. move to B"
move_to B "$B_ID"
step "5. back to A"
move_to A "$A_ID"
# several requests in a row: all from A
answers=$(for i in 1 2 3 4 5; do get "http://$EIP/" 2 || echo none; done | sort | uniq -c | sed 's/^ *//' | tr '\n' ';')
[ "$answers" = "5 served by $A_ID;" ] && ok "five more requests, all from A" || bad "five more requests: $answers"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 8: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 8: all observations hold"
