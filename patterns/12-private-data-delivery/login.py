#!/usr/bin/env python3
"""Pattern 12, private data delivery: a login page that hands out time-limited links.

The object stays private; a user who logs in gets two links to it that expire:

  * the catalogue's link, signed with S3's old query-string signature (Signature
    Version 2): AWSAccessKeyId, Expires (epoch seconds) and
    Signature = base64(HMAC-SHA1(secret, "GET\\n\\n\\n{Expires}\\n/{bucket}/{key}")),
    computed here with the standard library only;
  * a Signature Version 4 link made by the stock CLI, `aws s3 presign --expires-in N`.

Serve the page (stdlib http.server):

    login.py serve --bucket B --key K [--endpoint URL] [--ttl 300] [--port 8012]
                   [--user alice:wonderland] [--port-file F]

  GET /        the login form
  POST /login  user=..&password=..  -> 200 page with both links, or 401

Or print the two links once, as JSON:

    login.py links --bucket B --key K [--endpoint URL] [--ttl 300]

Credentials are the environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default
test/test, nimbus's root key); the endpoint is --endpoint, else $AWS_ENDPOINT_URL, else
http://localhost:4566.
"""
import argparse
import base64
import hashlib
import hmac
import html
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse


def legacy_link(endpoint, bucket, key, ttl, access_key, secret_key, now=None):
    """The catalogue's query-string signature (SigV2): valid until now + ttl (epoch seconds)."""
    expires = int(now if now is not None else time.time()) + ttl
    path = "/" + bucket + "/" + urllib.parse.quote(key, safe="/-_.~")
    string_to_sign = f"GET\n\n\n{expires}\n{path}"
    digest = hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    query = urllib.parse.urlencode({
        "AWSAccessKeyId": access_key,
        "Expires": str(expires),
        "Signature": base64.b64encode(digest).decode(),
    })
    return f"{endpoint}{path}?{query}", expires


def sigv4_link(endpoint, bucket, key, ttl):
    """`aws s3 presign`: a SigV4 link valid for ttl seconds.

    AWS CLI v1 still presigns with the old signature in us-east-1 unless the profile says
    `s3 = signature_version = s3v4`; a throwaway config file says so (CLI v2 always uses SigV4).
    """
    aws = shutil.which("aws")
    if not aws:
        raise SystemExit("the aws CLI is not on PATH")
    profile = os.environ.get("AWS_PROFILE")
    section = f"profile {profile}" if profile and profile != "default" else "default"
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write(f"[{section}]\ns3 =\n    signature_version = s3v4\n")
    try:
        env = dict(os.environ, AWS_CONFIG_FILE=cfg.name)
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        out = subprocess.run(
            [aws, "--endpoint-url", endpoint, "s3", "presign", f"s3://{bucket}/{key}", "--expires-in", str(ttl)],
            check=True, capture_output=True, text=True, env=env).stdout.strip()
    finally:
        os.unlink(cfg.name)
    if "X-Amz-Algorithm=AWS4-HMAC-SHA256" not in out:
        raise SystemExit(f"aws s3 presign did not make a SigV4 link: {out}")
    return out


def make_links(args):
    access_key = os.environ.get("AWS_ACCESS_KEY_ID", "test")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "test")
    v2, expires = legacy_link(args.endpoint, args.bucket, args.key, args.ttl, access_key, secret_key)
    v4 = sigv4_link(args.endpoint, args.bucket, args.key, args.ttl)
    return {"legacy": v2, "sigv4": v4, "expires": expires, "ttl": args.ttl}


FORM = """<!doctype html>
<html><head><meta charset="utf-8"><title>Log in</title></head>
<body><h1>Log in to download the report</h1>
<form method="post" action="/login">
  <label>User <input name="user"></label>
  <label>Password <input name="password" type="password"></label>
  <button>Log in</button>
</form>%s</body></html>
"""

LINKS = """<!doctype html>
<html><head><meta charset="utf-8"><title>Your download</title></head>
<body><h1>Hello, {user}</h1>
<p>These links work for {ttl} seconds (until {until} UTC), then S3 answers 403.</p>
<ul>
  <li><a id="legacy" href="{legacy}">download (query signature, as in the catalogue)</a></li>
  <li><a id="sigv4" href="{sigv4}">download (SigV4, from aws s3 presign)</a></li>
</ul></body></html>
"""


def serve(args):
    users = dict(u.split(":", 1) for u in args.user)

    class Handler(http.server.BaseHTTPRequestHandler):
        def send_page(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in ("/", "/login"):
                self.send_page(200, FORM % "")
            else:
                self.send_page(404, "<h1>Not found</h1>")

        def do_POST(self):
            if self.path != "/login":
                return self.send_page(404, "<h1>Not found</h1>")
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            user = form.get("user", [""])[0]
            password = form.get("password", [""])[0]
            if not user or not hmac.compare_digest(users.get(user, "\0"), password):
                return self.send_page(401, FORM % "<p id=\"error\">Wrong user or password.</p>")
            links = make_links(args)
            until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(links["expires"]))
            self.send_page(200, LINKS.format(
                user=html.escape(user), ttl=args.ttl, until=until,
                legacy=html.escape(links["legacy"]), sigv4=html.escape(links["sigv4"])))

        def log_message(self, fmt, *a):
            sys.stderr.write("login.py: " + (fmt % a) + "\n")

    httpd = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    port = httpd.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"login page on http://{args.host}:{port}/ (links for s3://{args.bucket}/{args.key}, {args.ttl} s)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("serve", "links"):
        s = sub.add_parser(name)
        s.add_argument("--bucket", required=True)
        s.add_argument("--key", required=True)
        s.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566"))
        s.add_argument("--ttl", type=int, default=300, help="seconds a link stays valid")
        if name == "serve":
            s.add_argument("--host", default="127.0.0.1")
            s.add_argument("--port", type=int, default=8012, help="0 picks a free port")
            s.add_argument("--port-file", help="write the port here once listening")
            s.add_argument("--user", action="append", default=None, help="user:password (repeatable)")
    args = p.parse_args()
    args.endpoint = args.endpoint.rstrip("/")
    if args.cmd == "links":
        print(json.dumps(make_links(args), indent=2))
    else:
        args.user = args.user or ["alice:wonderland"]
        serve(args)


if __name__ == "__main__":
    main()
