#!/usr/bin/env bash
# Pattern 39, functional firewall: security groups by function. The db group admits
# TCP 3306 only from members of the web group (a source group, not an address range).
# A db instance listens on 3306; a web instance reaches it, an instance of another group
# and this machine do not. Granting the other group and revoking it again takes effect
# at once. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances and enforces security
# groups with nftables). Everything made is listed as "made:" and removed at the end
# unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p39

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
step "1. security groups by function"
WEB_SG=$(new_group web "pattern 39: web servers, http from anywhere"); made security-group "$WEB_SG"
open_port "$WEB_SG" 80
DB_SG=$(new_group db "pattern 39: databases, 3306 from the web group only"); made security-group "$DB_SG"
awsc ec2 authorize-security-group-ingress --group-id "$DB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=3306,ToPort=3306,UserIdGroupPairs=[{GroupId=$WEB_SG}]" >/dev/null
OTHER_SG=$(new_group other "pattern 39: something else, http from anywhere"); made security-group "$OTHER_SG"
open_port "$OTHER_SG" 80
echo "groups: web $WEB_SG, db $DB_SG, other $OTHER_SG"
rule=$(q ec2 describe-security-groups --group-ids "$DB_SG" \
  --query 'SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,ToPort,UserIdGroupPairs[0].GroupId,length(IpRanges)]' | tr '\t' ' ')
[ "$rule" = "tcp 3306 3306 $WEB_SG 0" ] && ok "db group: only tcp 3306 from $WEB_SG (no address ranges)" \
  || bad "db group rules: $rule (expected tcp 3306 3306 $WEB_SG 0)"

step "2. a db instance on 3306; a web and an other instance that probe it"
# The "database": answers every connection on 3306 with a greeting naming the caller.
cat > "$WORK/db.sh" <<'UD'
#!/bin/bash
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /opt/p39
cat > /opt/p39/db.py <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 3306))
s.listen(16)
while True:
    c, addr = s.accept()
    c.sendall(f"db {sys.argv[1]} greets {addr[0]}\n".encode())
    c.close()
PY
nohup python3 /opt/p39/db.py "$IID" >/dev/null 2>&1 &
echo "db: listening on 3306"
UD
# The probe: GET /probe?host=H&port=P connects from inside the instance and says what happened.
cat > "$WORK/probe.sh" <<'UD'
#!/bin/bash
mkdir -p /opt/p39
cat > /opt/p39/probe.py <<'PY'
import http.server, socket, urllib.parse
class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        host, port = q.get("host", [""])[0], int(q.get("port", ["3306"])[0])
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(2)
                body = "connected: " + s.recv(200).decode().strip()
        except socket.timeout:
            body = "failed: timeout"
        except ConnectionRefusedError:
            body = "failed: refused"
        except OSError as e:
            body = f"failed: {e}"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Probe).serve_forever()
PY
nohup python3 /opt/p39/probe.py >/dev/null 2>&1 &
echo "probe: serving on 80"
UD
out=$(launch db "" --image-id "$BASE_IMAGE" --security-group-ids "$DB_SG" --user-data "file://$WORK/db.sh")
read -r DB_ID DB_IP <<<"$out"; made instance "$DB_ID"
out=$(launch web "" --image-id "$BASE_IMAGE" --security-group-ids "$WEB_SG" --user-data "file://$WORK/probe.sh")
read -r WEB_ID WEB_IP <<<"$out"; made instance "$WEB_ID"
out=$(launch other "" --image-id "$BASE_IMAGE" --security-group-ids "$OTHER_SG" --user-data "file://$WORK/probe.sh")
read -r OTH_ID OTH_IP <<<"$out"; made instance "$OTH_ID"
echo "db instance: $DB_ID $DB_IP"
echo "web instance: $WEB_ID $WEB_IP"
echo "other instance: $OTH_ID $OTH_IP"
probe() { get "http://$1/probe?host=$DB_IP&port=3306" 6 || echo "no answer from the probe at $1"; }

step "3. who reaches db:3306"
if r=$(wait_get "http://$WEB_IP/probe?host=$DB_IP&port=3306" 40 '^connected: '); then
  [ "$r" = "connected: db $DB_ID greets $WEB_IP" ] && ok "web ($WEB_IP) -> db $DB_IP:3306: $r" \
    || bad "web -> db:3306: $r (expected the db's greeting to $WEB_IP)"
else
  bad "web ($WEB_IP) -> db $DB_IP:3306: ${r:-no answer from the probe}"
fi
wait_get "http://$OTH_IP/probe?host=127.0.0.1&port=1" 40 >/dev/null || true   # the other probe is up
r=$(probe "$OTH_IP")
case $r in "failed: "*) ok "other ($OTH_IP) -> db $DB_IP:3306: $r" ;; *) bad "other ($OTH_IP) -> db $DB_IP:3306: $r (expected a failure)" ;; esac
host_try() {  # what this machine gets when it connects to db:3306
  local t0=$SECONDS out
  if out=$(timeout 3 bash -c "exec 3<>/dev/tcp/$DB_IP/3306 && head -n 1 <&3" 2>&1); then echo "connected: $out"
  elif [ $((SECONDS - t0)) -ge 3 ]; then echo "failed: timeout"
  else echo "failed: ${out##*: }"; fi
}
r=$(host_try)
case $r in "failed: "*) ok "this machine -> db $DB_IP:3306: $r" ;; *) bad "this machine -> db $DB_IP:3306: $r (expected a failure)" ;; esac

step "4. grant the other group, then revoke it again"
awsc ec2 authorize-security-group-ingress --group-id "$DB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=3306,ToPort=3306,UserIdGroupPairs=[{GroupId=$OTHER_SG}]" >/dev/null
say "authorized tcp 3306 from $OTHER_SG on $DB_SG"
if r=$(wait_get "http://$OTH_IP/probe?host=$DB_IP&port=3306" 15 '^connected: '); then
  ok "other -> db:3306 now: $r"
else
  bad "other -> db:3306 after the grant: $r"
fi
awsc ec2 revoke-security-group-ingress --group-id "$DB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=3306,ToPort=3306,UserIdGroupPairs=[{GroupId=$OTHER_SG}]" >/dev/null
say "revoked it"
if r=$(GET_TIMEOUT=5 wait_get "http://$OTH_IP/probe?host=$DB_IP&port=3306" 15 "^failed: "); then
  ok "other -> db:3306 after the revoke: $r"
else
  bad "other -> db:3306 after the revoke: $r"
fi
r=$(probe "$WEB_IP")
[ "$r" = "connected: db $DB_ID greets $WEB_IP" ] && ok "web -> db:3306 still: $r" || bad "web -> db:3306 after the revoke: $r"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 39: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 39: all observations hold"
