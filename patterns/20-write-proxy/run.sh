#!/usr/bin/env bash
# Pattern 20, write proxy: an upload server on an instance keeps uploads in a folder and
# syncs that folder with a bucket with `aws s3 sync`, both directions. The instance signs
# its S3 requests with the credentials of its instance profile's role, which the aws CLI
# reads from the metadata service: no key is in the user data, none is written to the
# instance's disk. See README.md.
#
#   NIMBUS_ENDPOINT=http://127.0.0.1:4566 ./run.sh [--endpoint-url URL] [--keep]
#
# The endpoint is --endpoint-url, else $NIMBUS_ENDPOINT, else $AWS_ENDPOINT_URL, else
# http://localhost:4566; credentials default to test/test, region us-east-1. Needs nimbus
# serving as root on Linux (its namespace driver runs the instances). Inside, the instance
# uses the same `aws` CLI as this script (the host's / is its lower layer). The check of
# the instance's disk reads nimbus's data directory, so it needs root (or sudo -n) on the
# machine nimbus runs on; elsewhere it is skipped. P20_PERIOD=SECONDS sets how often the
# instance syncs (default 5). Everything made is listed as "made:" and removed at the end
# unless --keep. Exits non-zero if an observation fails.
PATTERN_ID=p20

set -euo pipefail

PERIOD=${P20_PERIOD:-5}
case $PERIOD in ''|*[!0-9]*|0) echo "P20_PERIOD must be a whole number of seconds, not '$PERIOD'" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/instances.sh
source "$HERE/../lib/instances.sh"
AWS_DIR=$(dirname "$(command -v aws)")
BUCKET="$RUN-uploads"
ROLE="$RUN-uploader"
PROFILE="$RUN-uploader"
json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null || true; }
# What an access key looks like where it should not be: a key id (long-term AKIA..., or a
# session's ASIA...), or an entry of an aws credentials file.
KEY_RE='(AKIA|ASIA)[A-Z0-9]{16}|aws_secret_access_key|aws_session_token'
AS_ROOT=()  # how to read nimbus's data directory (below)
key_hits() {  # key_hits PATH...: "FILE:WHAT" for each file (binary ones too) that holds a key
  local v
  "${AS_ROOT[@]}" grep -raEoH "$KEY_RE" "$@" 2>/dev/null | sort -u || true
  for v in "${EXACT[@]}"; do
    if [ "${#v}" -ge 16 ]; then
      "${AS_ROOT[@]}" grep -raFl -- "$v" "$@" 2>/dev/null | sed 's/$/: a key of this run/' || true
    fi
  done
}
# The named values too, where they are long enough to be real keys (test/test is not).
EXACT=("$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY")

step "1. the bucket, and a role for the instance in an instance profile"
awsc s3 mb "s3://$BUCKET" >/dev/null; made bucket "$BUCKET"
echo "bucket: $BUCKET"
cat > "$WORK/trust.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
JSON
cat > "$WORK/sync.json" <<JSON
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::$BUCKET"},
               {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::$BUCKET/uploads/*"}]}
JSON
awsc iam create-role --role-name "$ROLE" --assume-role-policy-document "file://$WORK/trust.json" >/dev/null; made role "$ROLE"
if err=$(awsc iam put-role-policy --role-name "$ROLE" --policy-name sync-uploads \
    --policy-document "file://$WORK/sync.json" 2>&1); then
  POLICY="s3:ListBucket, s3:GetObject and s3:PutObject on $BUCKET/uploads/"
elif grep -q InvalidAction <<<"$err"; then
  printf '  gap   nimbus does not implement PutRolePolicy: %s\n' "$(tr -d '\n' <<<"$err")"
  POLICY="no policy: PutRolePolicy is not implemented by nimbus"
else
  echo "$err" >&2; exit 1
fi
awsc iam create-instance-profile --instance-profile-name "$PROFILE" >/dev/null; made instance-profile "$PROFILE"
awsc iam add-role-to-instance-profile --instance-profile-name "$PROFILE" --role-name "$ROLE"
ok "role $ROLE ($POLICY) in instance profile $PROFILE"

step "2. the upload server: user data without keys"
SG=$(new_group uploads "pattern 20: http from anywhere"); made security-group "$SG"
open_port "$SG" 80
{ echo '#!/bin/bash'; echo "export PATH=$AWS_DIR:\$PATH"; echo "BUCKET=$BUCKET"; echo "PERIOD=$PERIOD"; cat <<'UD'
# Pattern 20, write proxy. No keys here: the aws CLI signs with the instance profile's
# role credentials, which it reads from the metadata service (and, on nimbus, its
# endpoint and region from ~/.aws/config, which nimbus writes).
IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /srv/uploads /var/lib/uploads
printf 'IID=%s\nBUCKET=%s\nPERIOD=%s\n' "$IID" "$BUCKET" "$PERIOD" > /etc/uploads.env
ARN=$(aws sts get-caller-identity --query Arn --output text)
echo "$ARN" > /var/lib/uploads/arn
# where the aws CLI finds its credentials (the last column of its access_key line)
aws configure list | awk '$1 == "access_key" { print $NF }' > /var/lib/uploads/source
echo "write-proxy: $IID syncs /srv/uploads with s3://$BUCKET/uploads/ every $PERIOD s as $ARN"

# Both directions, again and again: new uploads go up, new objects come down.
cat > /usr/local/bin/upload-sync <<SYNC
#!/bin/bash
while :; do
  if aws s3 sync /srv/uploads s3://$BUCKET/uploads/ --exclude '.*' --only-show-errors \
     && aws s3 sync s3://$BUCKET/uploads/ /srv/uploads --only-show-errors; then
    echo \$((\$(cat /var/lib/uploads/syncs 2>/dev/null || echo 0) + 1)) > /var/lib/uploads/syncs.new
    mv /var/lib/uploads/syncs.new /var/lib/uploads/syncs
  fi
  sleep $PERIOD
done
SYNC
chmod 755 /usr/local/bin/upload-sync
nohup /usr/local/bin/upload-sync >/var/log/upload-sync.log 2>&1 &

# The upload server: PUT /NAME stores an upload, GET /NAME serves one, GET /_status says
# how the instance is doing (and which key id its role session has: an id, not a secret).
cat > /usr/local/bin/upload-server <<'PY'
#!/usr/bin/env python3
import http.server, json, os, urllib.request

ENV = dict(line.strip().split("=", 1) for line in open("/etc/uploads.env") if "=" in line)
ROOT, STATE = "/srv/uploads", "/var/lib/uploads"
IMDS = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"

def read(name):
    try:
        return open(os.path.join(STATE, name)).read().strip()
    except OSError:
        return ""

def session_key_id():
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    role = no_proxy.open(IMDS, timeout=2).read().decode().split()[0]
    return json.load(no_proxy.open(IMDS + role, timeout=2))["AccessKeyId"]

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
        if self.path != "/_status":
            return super().do_GET()
        self.answer(200, json.dumps({
            "instance": ENV["IID"], "bucket": ENV["BUCKET"], "period": int(ENV["PERIOD"]),
            "caller": read("arn"), "credential_source": read("source"),
            "access_key_id": session_key_id(), "syncs": int(read("syncs") or 0),
            "files": sorted(f for f in os.listdir(ROOT) if not f.startswith(".")),
        }) + "\n", "application/json")

    def do_PUT(self):
        name = self.path.lstrip("/")
        if not name or "/" in name or name.startswith("."):
            return self.answer(400, "PUT /NAME with a plain file name\n")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        tmp = os.path.join(ROOT, f".{name}.part")
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, os.path.join(ROOT, name))
        self.answer(201, f"stored {name} on {ENV['IID']}\n")

http.server.ThreadingHTTPServer(("", 80), Handler).serve_forever()
PY
chmod 755 /usr/local/bin/upload-server
nohup /usr/local/bin/upload-server >/var/log/upload-server.log 2>&1 &
UD
} > "$WORK/write-proxy.sh"
out=$(launch uploads "" --image-id "$BASE_IMAGE" --security-group-ids "$SG" \
  --iam-instance-profile "Name=$PROFILE" --user-data "file://$WORK/write-proxy.sh")
read -r ID IP <<<"$out"; made instance "$ID"
echo "upload instance: $ID $IP"
ud=$(q ec2 describe-instance-attribute --instance-id "$ID" --attribute userData --query UserData.Value | base64 -d)
if [ -z "$ud" ]; then
  bad "DescribeInstanceAttribute userData is empty"
else
  printf '%s' "$ud" > "$WORK/user-data.txt"
  hits=$(key_hits "$WORK/user-data.txt")
  [ -z "$hits" ] && ok "the user data (DescribeInstanceAttribute userData, $(wc -c < "$WORK/user-data.txt") bytes) holds no access key" \
    || bad "the user data holds a key: $hits"
fi
if st=$(GET_TIMEOUT=5 wait_get "http://$IP/_status" 60 '"syncs": [1-9]'); then
  caller=$(json_field "$st" caller); source=$(json_field "$st" credential_source); KEY_ID=$(json_field "$st" access_key_id)
  case $caller in
    *":assumed-role/$ROLE/$ID") ok "the instance syncs as $caller" ;;
    *) bad "the instance syncs as '$caller' (expected the role's session named after the instance)" ;;
  esac
  [ "$source" = iam-role ] && ok "the aws CLI on the instance takes its credentials from the instance profile: aws configure list says $source" \
    || bad "the aws CLI on the instance gets its credentials from '$source', not iam-role"
  echo "session key id: $KEY_ID"
else
  bad "the upload server answers no /_status with a sync done (${st:-no answer})"
  q ec2 get-console-output --instance-id "$ID" --query Output | tail -n 20 >&2 || true
  KEY_ID=""
fi

step "3. an upload to the instance appears in the bucket"
echo "uploaded to the instance by $RUN" > "$WORK/to-instance.txt"
r=$(curl -sS --noproxy '*' -m 10 -T "$WORK/to-instance.txt" "http://$IP/to-instance.txt" 2>&1 || true)
[ "$r" = "stored to-instance.txt on $ID" ] && ok "PUT http://$IP/to-instance.txt: $r" || bad "PUT on the instance: $r"
T0=$SECONDS; got=""
while [ $((SECONDS - T0)) -le $((PERIOD + 20)) ]; do
  got=$(q s3 cp "s3://$BUCKET/uploads/to-instance.txt" - 2>/dev/null || true)
  [ -n "$got" ] && break
  sleep 0.5
done
[ "$got" = "$(cat "$WORK/to-instance.txt")" ] && ok "s3://$BUCKET/uploads/to-instance.txt is there after $((SECONDS - T0)) s: $got" \
  || bad "s3://$BUCKET/uploads/to-instance.txt is not in the bucket: '$got'"

step "4. an object put in the bucket appears on the instance"
echo "put in the bucket by $RUN" > "$WORK/to-bucket.txt"
awsc s3 cp "$WORK/to-bucket.txt" "s3://$BUCKET/uploads/to-bucket.txt" --only-show-errors
T0=$SECONDS
if got=$(wait_get "http://$IP/to-bucket.txt" $((PERIOD + 20))) && [ "$got" = "$(cat "$WORK/to-bucket.txt")" ]; then
  ok "GET http://$IP/to-bucket.txt after $((SECONDS - T0)) s: $got"
else
  bad "the instance does not serve to-bucket.txt: '$got'"
fi

step "5. the instance's disk holds no access key"
DATA=$(curl -sS --noproxy '*' -m 5 "$ENDPOINT/_nimbus/health" | python3 -c 'import json, sys; print(json.load(sys.stdin)["data_dir"])' 2>/dev/null || true)
DISK="$DATA/ec2/instances/$ID/upper"
[ "$(id -u)" = 0 ] || AS_ROOT=(sudo -n)
if [ -z "$DATA" ] || ! "${AS_ROOT[@]}" test -d "$DISK" 2>/dev/null; then
  printf '  skip  the instance'\''s disk (%s) cannot be read from here: run this script as root on the machine nimbus runs on\n' "$DISK"
else
  EXACT+=("$KEY_ID")
  echo "instance disk: $DISK"
  # The writable layer is what the instance wrote: its uploads, the scripts its user data
  # made, what nimbus wrote for it (~/.aws/config, /etc/hosts...).
  files=$("${AS_ROOT[@]}" find "$DISK" -type f | wc -l)
  mine=$("${AS_ROOT[@]}" grep -rlF "$RUN" "$DISK" 2>/dev/null | sed "s|^$DISK||" | sort | tr '\n' ' ' || true)
  if grep -q " /srv/uploads/to-instance.txt " <<<" $mine" && grep -q " /srv/uploads/to-bucket.txt " <<<" $mine"; then
    ok "the instance's disk ($files files) holds both uploads: /srv/uploads/to-instance.txt, /srv/uploads/to-bucket.txt"
  else
    bad "the instance's disk does not hold the uploads (files naming $RUN: ${mine:-none})"
  fi
  hits=$(key_hits "$DISK")
  [ -z "$hits" ] && ok "no file of the instance's disk holds an access key (a key id like ${KEY_ID:-ASIA...}, a credentials-file entry)" \
    || bad "the instance's disk holds a key: $hits"
fi

echo
DONE=1
if [ "$FAILED" -gt 0 ]; then echo "pattern 20: $FAILED observation(s) FAILED"; exit 1; fi
echo "pattern 20: all observations hold"
