#!/usr/bin/env bash
# Pattern 15, clone server: a master instance takes the uploads; clones copy the master's
# upload folder with a periodic job (cron, every minute) over ssh, using a key pair made
# by CreateKeyPair, and proxy the writes they receive to the master. The master and both
# clones run one and the same user data; their Role tag (read from the instance metadata)
# decides what each becomes. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances) with openssh-server
# and cron installed on the host (the host's / is the instances' base image). The copy
# runs once a minute; P15_PERIOD=SECONDS (a divisor of 60) makes the minute's cron job
# copy every SECONDS instead (the e2e test uses 5). Everything made is listed as "made:"
# and removed at the end unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p15

set -euo pipefail

PERIOD=${P15_PERIOD:-60}
case $PERIOD in
  1|2|3|4|5|6|10|12|15|20|30|60) ;;
  *) echo "P15_PERIOD must divide 60 (seconds between copies), not '$PERIOD'" >&2; exit 2 ;;
esac
for tool in /usr/sbin/sshd /usr/sbin/cron; do
  if [ ! -x "$tool" ] && ! [[ " $* " =~ " -h "|" --help " ]]; then
    echo "this example runs $tool inside the instances, whose base image is this machine's /:" >&2
    echo "install openssh-server and cron (apt-get install openssh-server cron)" >&2
    exit 2
  fi
done
command -v ssh >/dev/null || [[ " $* " =~ " -h "|" --help " ]] || { echo "this example needs the ssh client (openssh-client)" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
KEY="$RUN-key"
WRONG="$RUN-wrong"
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
          -o IdentitiesOnly=yes -o ConnectTimeout=5 -o LogLevel=ERROR)
sshi() { local key=$1 ip=$2; shift 2; ssh -i "$key" "${SSH_OPTS[@]}" "root@$ip" "$@"; }
json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null || true; }

step "1. key pairs: the one the instances trust, and another one"
umask 077
q ec2 create-key-pair --key-name "$KEY" --key-type ed25519 --query '[KeyFingerprint,KeyMaterial]' > "$WORK/key.txt"
made key-pair "$KEY"
q ec2 create-key-pair --key-name "$WRONG" --key-type ed25519 --query KeyMaterial > "$WORK/wrong.pem"; made key-pair "$WRONG"
# text output: the fingerprint, a tab, then the private key (PEM lines)
head -n 1 "$WORK/key.txt" | cut -f 2- > "$WORK/key.pem"; tail -n +2 "$WORK/key.txt" >> "$WORK/key.pem"
umask 022
echo "key pair: $KEY $(head -n 1 "$WORK/key.txt" | cut -f 1)"
if pub=$(ssh-keygen -y -f "$WORK/key.pem" 2>/dev/null); then
  ok "CreateKeyPair gave a private key ssh accepts: ${pub%% *} (and a second pair, $WRONG, to be refused)"
else
  bad "ssh-keygen does not read the private key CreateKeyPair returned"
fi

step "2. one user data for all: the Role tag makes a master or a clone"
SG=$(new_group clones "pattern 15: ssh and http"); made security-group "$SG"
open_port "$SG" 22
open_port "$SG" 80
{ echo '#!/bin/bash'; echo "PERIOD=$PERIOD"; cat <<'UD'
# Pattern 15, clone server. Role (master or clone) and, for a clone, the master's private
# IP come from this instance's tags, through the metadata service.
MD=http://169.254.169.254/latest/meta-data
IID=$(curl -s $MD/instance-id)
ROLE=$(curl -s $MD/tags/instance/Role)
MASTER=""
[ "$ROLE" = clone ] && MASTER=$(curl -s $MD/tags/instance/Master)
mkdir -p /srv/uploads /var/lib/clone /run/sshd
printf 'IID=%s\nROLE=%s\nMASTER=%s\nPERIOD=%s\n' "$IID" "$ROLE" "$MASTER" "$PERIOD" > /etc/clone.env

# ssh in: root's authorized key is the key pair's public key (nimbus installs it, as EC2 does)
ssh-keygen -A >/dev/null 2>&1
/usr/sbin/sshd

# The web side: GET /NAME serves the upload folder; PUT /NAME stores an upload on the
# master, and is passed on to the master by a clone; GET /_status tells about the copies.
cat > /usr/local/bin/clone-server <<'PY'
#!/usr/bin/env python3
import http.server, json, os, time, urllib.error, urllib.request

ENV = dict(line.strip().split("=", 1) for line in open("/etc/clone.env") if "=" in line)
ROOT, STATE = "/srv/uploads", "/var/lib/clone"

def state(name):
    try:
        return open(os.path.join(STATE, name)).read().strip()
    except OSError:
        return ""

class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=ROOT, **kw)

    def log_message(self, *a):
        pass

    def answer(self, code, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_status":
            syncs = state("syncs")
            self.answer(200, json.dumps({
                "instance": ENV["IID"], "role": ENV["ROLE"], "master": ENV["MASTER"] or None,
                "period": int(ENV["PERIOD"]), "syncs": int(syncs or 0),
                "last_sync": float(state("last-sync") or 0), "last_error": state("last-error"),
                "files": sorted(f for f in os.listdir(ROOT) if not f.startswith(".")),
            }) + "\n", "application/json")
        else:
            super().do_GET()

    def do_PUT(self):
        name = self.path.lstrip("/")
        if not name or "/" in name or name.startswith("."):
            return self.answer(400, "PUT /NAME with a plain file name\n")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if ENV["ROLE"] == "clone":  # writes go to the master
            req = urllib.request.Request(f"http://{ENV['MASTER']}/{name}", data=body, method="PUT")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    code, text = r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                code, text = e.code, e.read().decode()
            except OSError as e:
                code, text = 502, f"master {ENV['MASTER']} unreachable: {e}\n"
            return self.answer(code, f"{ENV['IID']} passed it on: {text}")
        tmp = os.path.join(ROOT, f".{name}.part")
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, os.path.join(ROOT, name))
        self.answer(201, f"stored {name} on {ENV['IID']}\n")

http.server.ThreadingHTTPServer(("", 80), Handler).serve_forever()
PY
chmod 755 /usr/local/bin/clone-server
nohup /usr/local/bin/clone-server >/var/log/clone-server.log 2>&1 &

if [ "$ROLE" = clone ]; then
  # The periodic job: copy the master's upload folder over ssh, with the key pair's
  # private key (installed by the operator as /root/.ssh/clone_key, not in user data).
  cat > /usr/local/bin/clone-sync <<'SYNC'
#!/bin/bash
# Run by cron every minute; with PERIOD < 60 it copies 60/PERIOD times, PERIOD s apart.
set -o pipefail
. /etc/clone.env
exec 9>/run/clone-sync.lock
flock -n 9 || exit 0
copy() {
  if [ ! -f /root/.ssh/clone_key ]; then echo "no key yet" > /var/lib/clone/last-error; return; fi
  if err=$(ssh -i /root/.ssh/clone_key -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
        -o StrictHostKeyChecking=accept-new -o LogLevel=ERROR "root@$MASTER" \
        "tar -C /srv/uploads --exclude='./.*' -cf - ." 2>&1 >/var/lib/clone/copy.tar) \
     && tar -C /srv/uploads -xf /var/lib/clone/copy.tar; then
    echo $(( $(cat /var/lib/clone/syncs 2>/dev/null || echo 0) + 1 )) > /var/lib/clone/syncs.new
    mv /var/lib/clone/syncs.new /var/lib/clone/syncs
    date +%s.%N > /var/lib/clone/last-sync
    : > /var/lib/clone/last-error
  else
    echo "copy from $MASTER failed: $err" > /var/lib/clone/last-error
  fi
}
for ((i = 0; i < 60 / PERIOD; i++)); do
  [ "$i" -gt 0 ] && sleep "$PERIOD"
  copy
done
SYNC
  chmod 755 /usr/local/bin/clone-sync
  echo '* * * * * root /usr/local/bin/clone-sync' > /etc/cron.d/clone-sync
  chmod 644 /etc/cron.d/clone-sync
  /usr/sbin/cron
  echo "clone-server: $IID is a clone of $MASTER, copying every $PERIOD s (cron)"
else
  echo "clone-server: $IID is the master"
fi
UD
} > "$WORK/clone-server.sh"
common=(--image-id "$BASE_IMAGE" --security-group-ids "$SG" --key-name "$KEY"
        --metadata-options InstanceMetadataTags=enabled --user-data "file://$WORK/clone-server.sh")
out=$(launch master ",{Key=Role,Value=master}" "${common[@]}")
read -r M_ID M_IP <<<"$out"; made instance "$M_ID"
echo "master instance: $M_ID $M_IP"
C_IDS=(); C_IPS=()
for n in 1 2; do
  out=$(launch "clone-$n" ",{Key=Role,Value=clone},{Key=Master,Value=$M_IP}" "${common[@]}")
  read -r id ip <<<"$out"; made instance "$id"
  C_IDS+=("$id"); C_IPS+=("$ip")
  echo "clone instance: $id $ip"
done
same=1
ud_m=$(q ec2 describe-instance-attribute --instance-id "$M_ID" --attribute userData --query UserData.Value)
for id in "${C_IDS[@]}"; do
  [ "$(q ec2 describe-instance-attribute --instance-id "$id" --attribute userData --query UserData.Value)" = "$ud_m" ] || same=0
done
[ -n "$ud_m" ] && [ "$same" = 1 ] && ok "the master and both clones have the very same user data (DescribeInstanceAttribute userData)" \
  || bad "the user data differs between the master and the clones"
for trio in "$M_ID $M_IP master" "${C_IDS[0]} ${C_IPS[0]} clone" "${C_IDS[1]} ${C_IPS[1]} clone"; do
  read -r id ip role <<<"$trio"
  if st=$(wait_get "http://$ip/_status" 40 '"role"'); then
    got=$(json_field "$st" role); master=$(json_field "$st" master)
    if [ "$got" = "$role" ] && { [ "$role" = master ] || [ "$master" = "$M_IP" ]; }; then
      ok "$id became the $role$([ "$role" = clone ] && echo " of $M_IP") (Role tag from the metadata service)"
    else
      bad "$id is '$got' (master '$master'), not the $role"
    fi
  else
    bad "$id answers no /_status (${st:-no answer})"
    q ec2 get-console-output --instance-id "$id" --query Output | tail -n 20 >&2 || true
  fi
done

step "3. ssh with the key pair"
wait_port() {  # wait_port IP PORT SECONDS: until something listens there
  local end=$((SECONDS + $3))
  until timeout 2 bash -c ">/dev/tcp/$1/$2" 2>/dev/null; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.3
  done
}
for ip in "$M_IP" "${C_IPS[@]}"; do wait_port "$ip" 22 30 || say "nothing listens on $ip:22"; done
login=$(sshi "$WORK/key.pem" "$M_IP" hostname 2>&1 || true)
[ "$login" = "ip-${M_IP//./-}" ] && ok "ssh -i $KEY.pem root@$M_IP: logged in to $login" \
  || bad "ssh with the created key to the master: ${login:-no answer}"
if refused=$(sshi "$WORK/wrong.pem" "$M_IP" hostname 2>&1); then
  bad "the other key pair logged in to the master: $refused"
else
  grep -q "Permission denied" <<<"$refused" && ok "ssh -i $WRONG.pem root@$M_IP is refused: $(tr -d '\r' <<<"$refused" | head -n 1)" \
    || bad "the other key pair failed, but not with Permission denied: $refused"
fi
# The operator hands each clone the private key its periodic job uses (over ssh with that
# same key: the clones trust it too). Nothing secret goes into the user data.
for i in 0 1; do
  id=${C_IDS[i]} ip=${C_IPS[i]}
  if sshi "$WORK/key.pem" "$ip" 'umask 077; cat > /root/.ssh/clone_key' < "$WORK/key.pem"; then
    ok "installed the private key on clone $id ($ip) over ssh"
  else
    bad "could not ssh to clone $id ($ip)"
  fi
done
hop=$(sshi "$WORK/key.pem" "${C_IPS[0]}" "ssh -i /root/.ssh/clone_key -o IdentitiesOnly=yes -o BatchMode=yes \
  -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5 -o LogLevel=ERROR root@$M_IP hostname" 2>&1 || true)
[ "$hop" = "ip-${M_IP//./-}" ] && ok "from clone ${C_IDS[0]}, ssh root@$M_IP (the master's private IP) with the key: $hop" \
  || bad "clone ${C_IDS[0]} -> master by ssh: ${hop:-no answer}"

step "4. the clones' periodic job copies from the master"
say "waiting for each clone's cron job to copy once (cron starts jobs on the minute)"
end=$((SECONDS + 75))  # cron starts the job within a minute, and with the key in place it copies
for i in 0 1; do
  id=${C_IDS[i]} ip=${C_IPS[i]}
  if st=$(wait_get "http://$ip/_status" $((end > SECONDS ? end - SECONDS : 1)) '"syncs": [1-9]'); then
    ok "clone $id: cron ran the copy from $M_IP (syncs $(json_field "$st" syncs))"
  else
    bad "clone $id has not copied from the master: $st"
  fi
done

step "5. an upload on the master, and one through a clone, reach every clone within the period"
echo "first upload, straight to the master: $RUN" > "$WORK/on-master.txt"
echo "second upload, through clone ${C_IDS[0]}: $RUN" > "$WORK/via-clone.txt"
T0=$(date +%s.%N)
r=$(curl -sS --noproxy '*' -m 10 -T "$WORK/on-master.txt" "http://$M_IP/on-master.txt" 2>&1 || true)
[ "$r" = "stored on-master.txt on $M_ID" ] && ok "PUT http://$M_IP/on-master.txt: $r" || bad "PUT on the master: $r"
r=$(curl -sS --noproxy '*' -m 10 -T "$WORK/via-clone.txt" "http://${C_IPS[0]}/via-clone.txt" 2>&1 || true)
[ "$r" = "${C_IDS[0]} passed it on: stored via-clone.txt on $M_ID" ] && ok "PUT http://${C_IPS[0]}/via-clone.txt (a clone): $r" \
  || bad "PUT through the clone: $r"
got=$(get "http://$M_IP/via-clone.txt" || true)
[ "$got" = "$(cat "$WORK/via-clone.txt")" ] && ok "the master has the write made through the clone at once" \
  || bad "the master does not have via-clone.txt: '$got'"
for i in 0 1; do
  id=${C_IDS[i]} ip=${C_IPS[i]}
  for f in on-master.txt via-clone.txt; do
    if got=$(GET_TIMEOUT=1 wait_get "http://$ip/$f" $((PERIOD + 15))) && [ "$got" = "$(cat "$WORK/$f")" ]; then
      secs=$(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$T0")
      if python3 -c "import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]) + 5)" "$secs" "$PERIOD"; then
        ok "clone $id has $f after $secs s (period $PERIOD s)"
      else
        bad "clone $id has $f only after $secs s (period $PERIOD s)"
      fi
    else
      bad "clone $id does not have $f after $((PERIOD + 15)) s: '$got'"
    fi
  done
done
st=$(get "http://${C_IPS[1]}/_status" || true)
say "clone ${C_IDS[1]} status: $st"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 15: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 15: all observations hold"
