#!/usr/bin/env bash
# Pattern 41, web application firewall: a filtering proxy tier in front of the web tier.
# The proxy (on its own instance, group waf: TCP 80 from anywhere) inspects each request
# and refuses SQL injection with 403; what passes goes on to the web tier (group web: TCP
# 80 only from members of the waf group), whose application builds its SQL from the
# request as it comes. Going around the proxy is refused by the web tier's security
# group. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances and enforces security
# groups with nftables). Everything made is listed as "made:" and removed at the end
# unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p41

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
ask() {  # ask URL [curl arguments...]: prints "STATUS|X-WAF|X-WAF-Rule|X-Served-By|X-Client-Address" and keeps the body in $WORK/body
  local url=$1; shift
  rm -f "$WORK/body" "$WORK/head"
  curl -s --noproxy '*' -m 5 -o "$WORK/body" -D "$WORK/head" "$@" "$url" >/dev/null 2>&1 || true
  local status; status=$(awk 'NR == 1 { print $2 }' "$WORK/head" 2>/dev/null)
  printf '%s|%s|%s|%s|%s' "${status:-000}" "$(hdr X-WAF)" "$(hdr X-WAF-Rule)" "$(hdr X-Served-By)" "$(hdr X-Client-Address)"
}
hdr() { awk -v h="$1:" 'tolower($1) == tolower(h) { sub(/^[^:]*: */, ""); sub(/\r$/, ""); print; exit }' "$WORK/head" 2>/dev/null; }
body() { tr -d '\r' < "$WORK/body" 2>/dev/null | paste -sd ';' | cut -c1-160; }

step "1. security groups: the proxy open to all, the web tier only to the proxy's group"
WAF_SG=$(new_group waf "pattern 41: the filtering proxy tier, http from anywhere"); made security-group "$WAF_SG"
open_port "$WAF_SG" 80
WEB_SG=$(new_group web "pattern 41: the web tier, http from the waf group only"); made security-group "$WEB_SG"
awsc ec2 authorize-security-group-ingress --group-id "$WEB_SG" \
  --ip-permissions "IpProtocol=tcp,FromPort=80,ToPort=80,UserIdGroupPairs=[{GroupId=$WAF_SG}]" >/dev/null
echo "groups: waf $WAF_SG, web $WEB_SG"
rule=$(q ec2 describe-security-groups --group-ids "$WEB_SG" \
  --query 'SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,ToPort,UserIdGroupPairs[0].GroupId,length(IpRanges)]' | tr '\t' ' ')
[ "$rule" = "tcp 80 80 $WAF_SG 0" ] && ok "web group: only tcp 80 from $WAF_SG (no address ranges)" \
  || bad "web group rules: $rule (expected tcp 80 80 $WAF_SG 0)"

step "2. the web tier: an application that puts request parameters straight into its SQL"
cat > "$WORK/web.sh" <<'UD'
#!/bin/bash
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /opt/p41
cat > /opt/p41/app.py <<'PY'
import http.server, sqlite3, sys, threading, urllib.parse
IID = sys.argv[1]
db = sqlite3.connect(":memory:", check_same_thread=False)
db.executescript("""
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);
INSERT INTO products VALUES (1, 'widget', 2.50), (2, 'gadget', 9.99), (3, 'gizmo', 24.00);
CREATE TABLE users (name TEXT, password TEXT);
INSERT INTO users VALUES ('admin', 's3cret-admin-password'), ('alice', 'alice-password');
""")
lock = threading.Lock()
seen = []   # every request line that reached the application
class App(http.server.BaseHTTPRequestHandler):
    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Served-By", IID)
        self.send_header("X-Client-Address", self.client_address[0])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def query(self, sql):   # deliberately naive: the SQL is built from the request as it is
        with lock:
            try:
                rows = db.execute(sql).fetchall()
            except sqlite3.Error as e:
                return 500, f"database error: {e}\n"
        return 200, "".join(" ".join(str(c) for c in r) + "\n" for r in rows) or "no rows\n"
    def route(self, params):
        path = urllib.parse.urlsplit(self.path).path
        with lock:
            seen.append(f"{self.command} {self.path}")
        if path == "/":
            return 200, f"shop on {IID}\n"
        if path == "/products":
            return self.query("SELECT id, name, price FROM products WHERE id = " + params.get("id", "0"))
        if path == "/search":
            return self.query("SELECT id, name, price FROM products WHERE name LIKE '%" + params.get("q", "") + "%'")
        if path == "/login":
            status, rows = self.query("SELECT name FROM users WHERE name = '" + params.get("user", "")
                                      + "' AND password = '" + params.get("password", "") + "'")
            return (200, "welcome " + rows) if status == 200 and rows != "no rows\n" else (403, "login failed\n")
        if path == "/requests":
            with lock:
                return 200, "".join(s + "\n" for s in seen)
        return 404, "not found\n"
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        self.answer(*self.route({k: v[0] for k, v in q.items()}))
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode(errors="replace"))
        self.answer(*self.route({k: v[0] for k, v in form.items()}))
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), App).serve_forever()
PY
nohup python3 /opt/p41/app.py "$IID" >/dev/null 2>&1 &
echo "web tier: serving on 80"
UD
out=$(launch web "" --image-id "$BASE_IMAGE" --security-group-ids "$WEB_SG" --user-data "file://$WORK/web.sh")
read -r WEB_ID WEB_IP <<<"$out"; made instance "$WEB_ID"
echo "web instance: $WEB_ID $WEB_IP"

step "3. the filtering proxy in front of it"
# The proxy decodes what a request carries (path, query string, form body; percent and
# plus encoding, twice, so double encoding does not hide anything) and matches it against
# a few SQL-injection rules, in the manner of ModSecurity's core rule set.
{ echo '#!/bin/bash'; echo "WEB=$WEB_IP"; cat <<'UD'
mkdir -p /opt/p41
cat > /opt/p41/waf.py <<'PY'
import http.client, http.server, re, sys, urllib.parse
WEB = sys.argv[1]
RULES = [
    ("sqli-union", re.compile(r"\bunion\b.*\bselect\b")),
    ("sqli-tautology", re.compile(r"('|\b)\s*(or|and)\s+('?\w+'?)\s*(=|<|>|like\b)\s*('?\w+'?)|'\s*(or|and)\s*'")),
    ("sqli-stacked", re.compile(r";\s*(drop|delete|insert|update|alter|create|truncate|exec)\b")),
    ("sqli-comment", re.compile(r"'[^']*(--|#|/\*)")),
    ("sqli-timing", re.compile(r"\b(sleep|benchmark|pg_sleep)\s*\(|\bwaitfor\s+delay\b")),
]
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
def decoded(text):
    for _ in range(2):
        text = urllib.parse.unquote_plus(text)
    return text.lower()
def verdict(*parts):
    text = decoded(" ".join(parts))
    for name, rule in RULES:
        if rule.search(text):
            return name
    return None
class Waf(http.server.BaseHTTPRequestHandler):
    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def handle_one(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        rule = verdict(self.path, body.decode(errors="replace"))
        if rule:
            self.log_message("blocked %s %s (%s)", self.command, self.path, rule)
            return self.send(403, [("Content-Type", "text/plain"), ("X-WAF", "blocked"), ("X-WAF-Rule", rule)],
                             f"403 Forbidden: blocked by the web application firewall (rule {rule})\n".encode())
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["X-Forwarded-For"] = self.client_address[0]
        try:
            conn = http.client.HTTPConnection(WEB, 80, timeout=5)
            conn.request(self.command, self.path, body=body or None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            out = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP | {"content-length", "server", "date"}]
            conn.close()
        except OSError as e:
            return self.send(502, [("Content-Type", "text/plain"), ("X-WAF", "passed")], f"502 Bad Gateway: {e}\n".encode())
        self.send(r.status, out + [("X-WAF", "passed")], data)
    do_GET = do_POST = do_HEAD = handle_one
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Waf).serve_forever()
PY
nohup python3 /opt/p41/waf.py "$WEB" >>/var/log/waf.log 2>&1 &
echo "waf: serving on 80, forwarding to $WEB:80"
UD
} > "$WORK/waf.sh"
out=$(launch waf "" --image-id "$BASE_IMAGE" --security-group-ids "$WAF_SG" --user-data "file://$WORK/waf.sh")
read -r WAF_ID WAF_IP <<<"$out"; made instance "$WAF_ID"
echo "proxy instance: $WAF_ID $WAF_IP"

step "4. a normal request passes"
if wait_get "http://$WAF_IP/" 40 "^shop on $WEB_ID" >/dev/null; then
  ok "http://$WAF_IP/ (the proxy) answers with the web tier's page: shop on $WEB_ID"
else
  bad "no page from the web tier through the proxy at http://$WAF_IP/"
  q ec2 get-console-output --instance-id "$WAF_ID" --query Output | tail -n 20 >&2 || true
fi
r=$(ask "http://$WAF_IP/products?id=2")
b=$(body)
[ "$r" = "200|passed||$WEB_ID|$WAF_IP" ] && [ "$b" = "2 gadget 9.99" ] \
  && ok "GET /products?id=2 -> 200 \"$b\" (X-WAF: passed, served by $WEB_ID, which saw the proxy's address $WAF_IP)" \
  || bad "GET /products?id=2 -> $r \"$b\" (expected 200|passed||$WEB_ID|$WAF_IP \"2 gadget 9.99\")"
r=$(ask "http://$WAF_IP/search?q=gi")
b=$(body)
[ "${r%%|*}" = 200 ] && [ "$b" = "3 gizmo 24.0" ] && ok "GET /search?q=gi -> 200 \"$b\"" || bad "GET /search?q=gi -> $r \"$b\""

step "5. SQL injection is refused by the proxy with 403"
inject() {  # inject LABEL [curl arguments...] URL
  local label=$1; shift
  local url=${*: -1} r b status waf rule by
  r=$(ask "$url" "${@:1:$#-1}")
  b=$(body)
  IFS='|' read -r status waf rule by _ <<<"$r"
  if [ "$status|$waf" = "403|blocked" ] && [[ $rule == sqli-* ]] && [ -z "$by" ]; then
    ok "$label -> 403 from the proxy, rule $rule: \"$b\""
  else
    bad "$label -> $r \"$b\" (expected 403 from the proxy)"
  fi
}
# the same parameters the application puts into its SQL
inject "GET /products?id=2 OR 1=1 (every row)" "http://$WAF_IP/products?id=2%20OR%201=1"
inject "GET /search?q=x' UNION SELECT 0, name, password FROM users-- (the users table)" \
  "http://$WAF_IP/search?q=x%27%20UNION%20SELECT%200,%20name,%20password%20FROM%20users--"
inject "POST /login user=admin'-- (no password)" --data-urlencode "user=admin'--" --data-urlencode "password=x" "http://$WAF_IP/login"
inject "GET /products?id=1; DROP TABLE users (double-encoded)" "http://$WAF_IP/products?id=1%253B%2520DROP%2520TABLE%2520users"
r=$(ask "http://$WAF_IP/requests")
seen=$(tr -d '\r' < "$WORK/body" 2>/dev/null | paste -sd ';')
if [ "${r%%|*}" = 200 ] && grep -q 'GET /products?id=2;' <<<"$seen;" && ! grep -qiE 'union|or%201|drop|POST /login' <<<"$seen"; then
  ok "the web tier's own log of requests: $seen (none of the injections reached it)"
else
  bad "the web tier saw: ${seen:-nothing} ($r)"
fi

step "6. around the proxy: the web tier's security group refuses"
r=$(code "http://$WEB_IP/products?id=2%20OR%201=1" 3)
[ "$r" = 000 ] && ok "this machine -> web tier http://$WEB_IP/ directly: no answer (dropped: only the waf group is admitted)" \
  || bad "this machine -> web tier http://$WEB_IP/ directly: HTTP $r (expected no answer)"
r=$(ask "http://$WAF_IP/products?id=3")
[ "${r%%|*}" = 200 ] && [ "$(body)" = "3 gizmo 24.0" ] && ok "through the proxy it still answers: GET /products?id=3 -> 200 \"$(body)\"" \
  || bad "through the proxy after the direct attempt: $r"

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 41: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 41: all observations hold"
