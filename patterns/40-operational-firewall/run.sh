#!/usr/bin/env bash
# Pattern 40, operational firewall: the front ends are shared by several client
# organisations, and each client is admitted by a security group of its own. Every
# client's instances are in the client's group (client-a, client-b, client-c); the front
# ends carry one group per client (fe-a, fe-b, fe-c), each admitting TCP 80 only from that
# client's group. Changing one client's access (revoke its rule, authorize it again)
# touches that client's group only: while it happens the script polls every client
# instance against every front end, and the other clients never miss an answer.
# See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances and enforces security
# groups with nftables). Everything made is listed as "made:" and removed at the end
# unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p40

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
ORGS=(a b c)        # the client organisations
CHANGED=b           # the one whose access is changed
declare -A CLIENT_SG FE_SG
admit() {  # admit authorize|revoke ORG: the front ends' rule for ORG (tcp 80 from ORG's group)
  awsc ec2 "$1-security-group-ingress" --group-id "${FE_SG[$2]}" \
    --ip-permissions "IpProtocol=tcp,FromPort=80,ToPort=80,UserIdGroupPairs=[{GroupId=${CLIENT_SG[$2]}}]" >/dev/null
}
fe_rules() {  # the front-end groups' ingress rules, a line each: "GROUP PROTOCOL FROM TO SOURCE-GROUPS RANGES"
  q ec2 describe-security-groups --group-ids "${FE_SG[@]}" \
    --query 'SecurityGroups[].[GroupId,IpPermissions[].[IpProtocol,FromPort,ToPort,join(`,`,UserIdGroupPairs[].GroupId),length(IpRanges)]]' \
    | awk 'NF == 1 { if (g) print g, r; g = $1; r = ""; next } { r = r (r ? " | " : "") $0 } END { if (g) print g, r }' | tr '\t' ' '
}
rule_of() {  # rule_of ORG RULES: ORG's front-end group's rules, from fe_rules' answer
  awk -v g="${FE_SG[$1]}" '$1 == g { $1 = ""; sub(/^ /, ""); print }' <<<"$2"
}

step "1. a security group per client, and the front ends' group for each client"
for o in "${ORGS[@]}"; do
  CLIENT_SG[$o]=$(new_group "client-$o" "pattern 40: client organisation $o's instances"); made security-group "${CLIENT_SG[$o]}"
  # only so that this walk-through can ask the client's instances to probe (port 8080)
  open_port "${CLIENT_SG[$o]}" 8080
  FE_SG[$o]=$(new_group "fe-$o" "pattern 40: the front ends, for client $o"); made security-group "${FE_SG[$o]}"
  admit authorize "$o"
  echo "client $o: group ${CLIENT_SG[$o]}, admitted by front-end group ${FE_SG[$o]}"
done
rules=$(fe_rules)
for o in "${ORGS[@]}"; do
  r=$(rule_of "$o" "$rules")
  [ "$r" = "tcp 80 80 ${CLIENT_SG[$o]} 0" ] && ok "fe-$o admits only tcp 80 from client-$o (${CLIENT_SG[$o]})" \
    || bad "fe-$o rules: $r (expected tcp 80 80 ${CLIENT_SG[$o]} 0)"
done

step "2. two front ends in every client's front-end group; client instances in their own groups"
cat > "$WORK/fe.sh" <<'UD'
#!/bin/bash
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /opt/p40
cat > /opt/p40/fe.py <<'PY'
import http.server, sys
IID = sys.argv[1]
class FrontEnd(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = f"front end {IID} answered {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), FrontEnd).serve_forever()
PY
nohup python3 /opt/p40/fe.py "$IID" >/dev/null 2>&1 &
echo "front end: serving on 80"
UD
# A client's machine: GET :8080/probe?targets=IP,IP requests http://IP/ from inside the
# instance, all targets at once, 1 s timeout each; one line per target: "IP ok|failed ...".
cat > "$WORK/client.sh" <<'UD'
#!/bin/bash
mkdir -p /opt/p40
cat > /opt/p40/probe.py <<'PY'
import concurrent.futures, http.server, socket, urllib.error, urllib.parse, urllib.request
NOPROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def fetch(target):
    try:
        with NOPROXY.open(f"http://{target}/", timeout=1) as r:
            return f"{target} ok {r.read().decode().strip()}"
    except (socket.timeout, TimeoutError):
        return f"{target} failed timeout"
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"{target} failed timeout"
        if isinstance(reason, ConnectionRefusedError):
            return f"{target} failed refused"
        return f"{target} failed {reason}"
    except OSError as e:
        return f"{target} failed {e}"
class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        targets = [t for t in q.get("targets", [""])[0].split(",") if t]
        with concurrent.futures.ThreadPoolExecutor(max(1, len(targets))) as pool:
            data = ("\n".join(pool.map(fetch, targets)) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Probe).serve_forever()
PY
nohup python3 /opt/p40/probe.py >/dev/null 2>&1 &
echo "client: probe on 8080"
UD
launch_many() {  # launch_many NAME COUNT [run-instances arguments...]: a line "INSTANCE_ID PRIVATE_IP" each
  local name=$1 count=$2; shift 2
  q ec2 run-instances --count "$count" --instance-type t2.micro --image-id "$BASE_IMAGE" \
    --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=$RUN-$name},{Key=nimbus-pattern,Value=$RUN}]" \
    "$@" --query 'Instances[].[InstanceId,PrivateIpAddress]'
}
FE_IDS=(); FE_IPS=()
out=$(launch_many fe 2 --security-group-ids "${FE_SG[a]}" "${FE_SG[b]}" "${FE_SG[c]}" --user-data "file://$WORK/fe.sh")
while read -r iid ip; do
  made instance "$iid"; FE_IDS+=("$iid"); FE_IPS+=("$ip")
  echo "front end ${#FE_IDS[@]}: $iid $ip"
done <<<"$out"
# client b has two instances: a client's group covers all of its machines
CLIENTS=()
declare -A CL_IP
for o in "${ORGS[@]}"; do
  n=1; [ "$o" = "$CHANGED" ] && n=2
  out=$(launch_many "client-$o" "$n" --security-group-ids "${CLIENT_SG[$o]}" --user-data "file://$WORK/client.sh")
  k=0
  while read -r iid ip; do
    k=$((k + 1)); cl="$o$k"; made instance "$iid"
    CLIENTS+=("$cl"); CL_IP[$cl]=$ip
    echo "client instance $cl: $iid $ip"
  done <<<"$out"
done
TARGETS=$(IFS=,; echo "${FE_IPS[*]}")

step "3. every client reaches both front ends; nothing else does"
for cl in "${CLIENTS[@]}"; do
  end=$((SECONDS + 40))
  while :; do   # until the client's probe is up and both front ends answer it
    r=$(get "http://${CL_IP[$cl]}:8080/probe?targets=$TARGETS" 4 || true)
    n_ok=$(grep -c " ok front end i-[0-9a-f]* answered ${CL_IP[$cl]}$" <<<"$r" || true)
    if [ "$n_ok" = "${#FE_IPS[@]}" ] || [ "$SECONDS" -ge "$end" ]; then break; fi
    sleep 0.3
  done
  if [ "$n_ok" = "${#FE_IPS[@]}" ]; then
    ok "client $cl (${CL_IP[$cl]}) -> both front ends: $(grep -o 'front end i-[0-9a-f]* answered [0-9.]*' <<<"$r" | paste -sd ';' | sed 's/;/; /g')"
  else
    bad "client $cl (${CL_IP[$cl]}) -> front ends: $(tr '\n' ';' <<<"${r:-no answer from the probe}")"
  fi
done
r=$(code "http://${FE_IPS[0]}/" 2)
[ "$r" = 000 ] && ok "this machine -> front end ${FE_IPS[0]}:80: no answer (not a client)" \
  || bad "this machine -> front end ${FE_IPS[0]}:80: HTTP $r (expected no answer)"

step "4. change client $CHANGED's access (revoke, then authorize) while every client is polled"
LOG="$WORK/poll.log"; : > "$LOG"
poll_round() {  # one round: every client instance probes every front end; lines "START END CLIENT TARGET ok|failed"
  local t0=$EPOCHREALTIME cl
  for cl in "${CLIENTS[@]}"; do
    (
      r=$(get "http://${CL_IP[$cl]}:8080/probe?targets=$TARGETS" 4) || r=$(printf '%s failed no-answer-from-probe\n' "${FE_IPS[@]}")
      t1=$EPOCHREALTIME
      while read -r target status rest; do
        [ -n "$target" ] && printf '%s %s %s %s %s %s\n' "$t0" "$t1" "$cl" "$target" "$status" "${rest%% *}" >> "$LOG"
      done <<<"$r"
    ) &
  done
  wait
}
# The poller stops when asked, and on its own once the run's work folder is gone.
( while [ -d "$WORK" ] && [ ! -e "$WORK/stop" ]; do poll_round; sleep 0.2; done ) >/dev/null 2>&1 &
POLLER=$!
rounds_since() { awk -v t="$1" '$1 > t { print $1 }' "$LOG" | sort -u | wc -l; }
wait_rounds() {  # wait_rounds N: until N more rounds have been completed
  local start=$EPOCHREALTIME end=$((SECONDS + 20))
  while [ "$(awk -v t="$start" '$1 > t && $2 > t' "$LOG" | awk '{print $1}' | sort -u | wc -l)" -lt "$1" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
}
# the first round after T in which every line of client CHANGED says STATUS: prints its start
first_round() {  # first_round T STATUS
  awk -v t="$1" -v o="$CHANGED" -v s="$2" -v n="$(( 2 * ${#FE_IPS[@]} ))" '
    $1 > t && substr($3, 1, 1) == o { seen[$1]++; if ($5 == s) good[$1]++ }
    END { for (r in seen) if (seen[r] == n && good[r] == n) print r }' "$LOG" | sort -n | head -n1
}
wait_for_round() {  # wait_for_round T STATUS SECONDS
  local end=$((SECONDS + $3)) r
  while :; do
    r=$(first_round "$1" "$2"); [ -n "$r" ] && { echo "$r"; return 0; }
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}
wait_rounds 2
say "polling: $(rounds_since 0) rounds so far, every client instance against both front ends"
T_REVOKE=$EPOCHREALTIME
admit revoke "$CHANGED"
T_REVOKED=$EPOCHREALTIME
say "revoked tcp 80 from client-$CHANGED on fe-$CHANGED"
if CUT=$(wait_for_round "$T_REVOKED" failed 15); then
  wait_rounds 2
else
  CUT=""
fi
T_AUTH=$EPOCHREALTIME
admit authorize "$CHANGED"
T_AUTHED=$EPOCHREALTIME
say "authorized it again"
if BACK=$(wait_for_round "$T_AUTHED" ok 15); then wait_rounds 2; else BACK=""; fi
touch "$WORK/stop"; wait "$POLLER" 2>/dev/null || true
T_END=$EPOCHREALTIME
total=$(awk '{print $1}' "$LOG" | sort -u | wc -l)
say "polled $total rounds over $(awk -v a="$(head -n1 "$LOG" | cut -d' ' -f1)" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }') s"

step "5. what the polling saw"
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
count() {  # count AWK_CONDITION: lines of the log that match
  awk "$1" "$LOG" | wc -l
}
if [ -n "$CUT" ]; then
  before=$(count "\$2 < $T_REVOKE && substr(\$3, 1, 1) == \"$CHANGED\"")
  before_ok=$(count "\$2 < $T_REVOKE && substr(\$3, 1, 1) == \"$CHANGED\" && \$5 == \"ok\"")
  cut=$(count "\$1 >= $CUT && \$2 < $T_AUTH && substr(\$3, 1, 1) == \"$CHANGED\"")
  cut_failed=$(count "\$1 >= $CUT && \$2 < $T_AUTH && substr(\$3, 1, 1) == \"$CHANGED\" && \$5 == \"failed\"")
  [ "$before" -gt 0 ] && [ "$before_ok" = "$before" ] && ok "client $CHANGED before the revoke: $before_ok/$before probes answered" \
    || bad "client $CHANGED before the revoke: $before_ok/$before probes answered"
  how=$(awk -v c="$CUT" -v t="$T_AUTH" -v o="$CHANGED" '$1 >= c && $2 < t && substr($3, 1, 1) == o { print $6 }' "$LOG" | sort -u | paste -sd,)
  [ "$cut" -gt 0 ] && [ "$cut_failed" = "$cut" ] \
    && ok "client $CHANGED cut off $(secs "$T_REVOKED" "$CUT") s after RevokeSecurityGroupIngress returned: $cut_failed/$cut probes failed ($how) until the authorize" \
    || bad "client $CHANGED after the revoke: $cut_failed/$cut probes failed"
else
  bad "client $CHANGED was never cut off within 15 s of the revoke"
fi
if [ -n "$BACK" ]; then
  since=$(count "\$1 >= $BACK && substr(\$3, 1, 1) == \"$CHANGED\"")
  since_ok=$(count "\$1 >= $BACK && substr(\$3, 1, 1) == \"$CHANGED\" && \$5 == \"ok\"")
  [ "$since" -gt 0 ] && [ "$since_ok" = "$since" ] \
    && ok "client $CHANGED restored $(secs "$T_AUTHED" "$BACK") s after AuthorizeSecurityGroupIngress returned: $since_ok/$since probes answered since" \
    || bad "client $CHANGED after the authorize: $since_ok/$since probes answered since the first full round"
else
  bad "client $CHANGED was not restored within 15 s of the authorize"
fi
for o in "${ORGS[@]}"; do
  [ "$o" = "$CHANGED" ] && continue
  all=$(count "substr(\$3, 1, 1) == \"$o\"")
  good=$(count "substr(\$3, 1, 1) == \"$o\" && \$5 == \"ok\"")
  during=$(count "\$2 > $T_REVOKE && \$1 < ${BACK:-$T_END} && substr(\$3, 1, 1) == \"$o\"")
  if [ "$during" -gt 0 ] && [ "$all" -gt 0 ] && [ "$good" = "$all" ]; then
    ok "client $o kept its access throughout: $good/$all probes answered ($during while client $CHANGED's access changed)"
  else
    bad "client $o: $good/$all probes answered ($during during the change); failures: $(awk -v o="$o" 'substr($3,1,1) == o && $5 != "ok"' "$LOG" | head -n 3 | tr '\n' ';')"
  fi
done
same=0
rules=$(fe_rules)
for o in "${ORGS[@]}"; do
  r=$(rule_of "$o" "$rules")
  if [ "$r" = "tcp 80 80 ${CLIENT_SG[$o]} 0" ]; then same=$((same + 1)); else bad "fe-$o rules at the end: $r"; fi
done
[ "$same" = "${#ORGS[@]}" ] && ok "DescribeSecurityGroups at the end: fe-a, fe-b, fe-c each admit tcp 80 from their client's group only"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 40: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 40: all observations hold"
