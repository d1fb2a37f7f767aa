#!/usr/bin/env python3
"""Pattern 22: a browser form that POSTs a file straight into an S3 bucket.

Prepares the bucket (ACLs enabled with ObjectWriter ownership, Block Public Access
removed, so that `acl=public-read` is allowed) and writes signed HTML upload forms,
one per signature form, plus their expired twins:

    form-v2.html          SigV2: AWSAccessKeyId, policy, signature (HMAC-SHA1)
    form-v4.html          SigV4: x-amz-algorithm/-credential/-date/-signature (HMAC-SHA256)
    form-v2-expired.html  the same, with a policy that expired an hour ago
    form-v4-expired.html
    done.html             where S3 redirects after an upload (success_action_redirect)
    index.html            links to all of the above

The policy of every form:

    {"bucket": BUCKET}
    ["starts-with", "$key", "uploads/"]
    {"acl": "public-read"}
    {"success_action_redirect": REDIRECT}
    ["starts-with", "$Content-Type", "image/jpeg"]
    ["content-length-range", 1, MAX_SIZE]

The key is `uploads/${filename}`; the page copies the chosen file's type into the
Content-Type field, so a PNG or a text file breaks the policy. Opening a form with
`#demo` builds a small JPEG in the page and submits it (no file to pick);
`#demo-wrong-type` does the same with a text file.

Usage (nimbus serve running on :4566):

    python3 make_form.py --serve 8000      # writes ./out, serves it on 127.0.0.1:8000
    # then open http://127.0.0.1:8000/

Only boto3 is needed (the project's .venv has it).
"""
import argparse
import base64
import datetime
import functools
import hashlib
import hmac
import html
import http.server
import json
import os
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError

KEY_PREFIX = "uploads/"


def sign_v2(policy_b64, secret):
    return base64.b64encode(hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()).decode()


def sign_v4(policy_b64, secret, date, region):
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.new(k, policy_b64.encode(), hashlib.sha256).hexdigest()


def form_fields(kind, args, expires_at, now):
    """The form's fields in order (the file input comes after them)."""
    fields = [
        ("key", KEY_PREFIX + "${filename}"),
        ("acl", "public-read"),
        ("success_action_redirect", args.redirect),
        ("Content-Type", "image/jpeg"),
    ]
    conditions = [
        {"bucket": args.bucket},
        ["starts-with", "$key", KEY_PREFIX],
        {"acl": "public-read"},
        {"success_action_redirect": args.redirect},
        ["starts-with", "$Content-Type", "image/jpeg"],
        ["content-length-range", 1, args.max_size],
    ]
    auth = []
    if kind == "v4":
        date = now.strftime("%Y%m%d")
        credential = f"{args.access_key}/{date}/{args.region}/s3/aws4_request"
        auth = [("x-amz-algorithm", "AWS4-HMAC-SHA256"), ("x-amz-credential", credential),
                ("x-amz-date", now.strftime("%Y%m%dT%H%M%SZ"))]
        conditions += [{k: v} for k, v in auth]
    policy = {"expiration": expires_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "conditions": conditions}
    policy_b64 = base64.b64encode(json.dumps(policy).encode()).decode()
    if kind == "v2":
        return fields + [("AWSAccessKeyId", args.access_key), ("policy", policy_b64),
                         ("signature", sign_v2(policy_b64, args.secret_key))]
    return fields + auth + [("policy", policy_b64),
                            ("x-amz-signature", sign_v4(policy_b64, args.secret_key, date, args.region))]


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body>
  <h1>{title}</h1>
  <p>Uploads a JPEG to <code>{action}</code> as <code>uploads/&lt;file name&gt;</code>.</p>
  <form id="upload" action="{action}" method="post" enctype="multipart/form-data">
{inputs}
    <input type="file" name="file" id="file" accept="image/jpeg">
    <input type="submit" value="Upload">
  </form>
  <script>
    const form = document.getElementById("upload");
    const input = document.getElementById("file");
    // S3 stores (and the policy checks) the Content-Type field, not the file part's header.
    const setType = () => {{
      if (input.files.length) form.elements["Content-Type"].value = input.files[0].type || "application/octet-stream";
    }};
    input.addEventListener("change", setType);
    form.addEventListener("submit", setType);
    // #demo: a small JPEG made here; #demo-wrong-type: a text file (breaks the policy).
    if (location.hash === "#demo" || location.hash === "#demo-wrong-type") {{
      const jpeg = location.hash === "#demo";
      const bytes = jpeg
        ? new Uint8Array([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0x49, 0x46, 0x00, 0xFF, 0xD9])
        : new TextEncoder().encode("not a picture\\n");
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], jpeg ? "demo.jpg" : "demo.txt", {{type: jpeg ? "image/jpeg" : "text/plain"}}));
      input.files = dt.files;
      setType();
      window.addEventListener("load", () => form.submit());
    }}
  </script>
</body></html>
"""

DONE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Uploaded</title></head>
<body>
  <h1>Uploaded</h1>
  <p id="result"></p>
  <p><img id="preview" alt="the uploaded object, read anonymously"></p>
  <script>
    const q = new URLSearchParams(location.search);
    const bucket = q.get("bucket"), key = q.get("key"), etag = q.get("etag");
    document.getElementById("result").textContent =
      "upload-done bucket=" + bucket + " key=" + key + " etag=" + etag;
    const url = {endpoint} + "/" + encodeURIComponent(bucket) + "/" +
      key.split("/").map(encodeURIComponent).join("/");
    const img = document.getElementById("preview");
    img.src = url;
    img.insertAdjacentHTML("afterend", '<br><a id="object" href="' + url + '">' + url + "</a>");
  </script>
</body></html>
"""


def write_page(path, kind, fields, action, title):
    inputs = "\n".join(f'    <input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                       for k, v in fields)
    with open(path, "w") as f:
        f.write(PAGE.format(title=html.escape(title), action=html.escape(action), inputs=inputs))


def prepare_bucket(args):
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name=args.region,
                      aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
                      config=botocore.config.Config(s3={"addressing_style": "path"},
                                                    retries={"max_attempts": 2}))
    try:
        s3.create_bucket(Bucket=args.bucket)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    # New buckets have ACLs disabled and Block Public Access on (AWS's defaults since
    # April 2023): acl=public-read needs both lifted.
    s3.put_bucket_ownership_controls(Bucket=args.bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.delete_public_access_block(Bucket=args.bucket)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", default=os.environ.get("NIMBUS_ENDPOINT", "http://127.0.0.1:4566"))
    p.add_argument("--bucket", default="pattern-22-uploads")
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"))
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    p.add_argument("--serve", type=int, metavar="PORT", help="serve --out on 127.0.0.1:PORT afterwards")
    p.add_argument("--redirect", help="success_action_redirect (default http://127.0.0.1:PORT/done.html)")
    p.add_argument("--expires-in", type=int, default=3600, help="seconds the forms stay valid")
    p.add_argument("--max-size", type=int, default=10 * 1024 * 1024, help="content-length-range maximum")
    p.add_argument("--no-bucket-setup", action="store_true", help="only write the forms")
    args = p.parse_args(argv)
    args.endpoint = args.endpoint.rstrip("/")
    if not args.redirect:
        args.redirect = f"http://127.0.0.1:{args.serve or 8000}/done.html"

    if not args.no_bucket_setup:
        prepare_bucket(args)
    os.makedirs(args.out, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    action = f"{args.endpoint}/{args.bucket}"
    pages = []
    for kind, label in (("v2", "SigV2 (HMAC-SHA1)"), ("v4", "SigV4 (HMAC-SHA256)")):
        for expired in (False, True):
            expires_at = now + datetime.timedelta(seconds=-3600 if expired else args.expires_in)
            name = f"form-{kind}{'-expired' if expired else ''}.html"
            title = f"Upload, {label}{', expired policy' if expired else ''}"
            write_page(os.path.join(args.out, name), kind, form_fields(kind, args, expires_at, now), action, title)
            pages.append((name, title))
    with open(os.path.join(args.out, "done.html"), "w") as f:
        f.write(DONE.format(endpoint=json.dumps(args.endpoint)))
    with open(os.path.join(args.out, "index.html"), "w") as f:
        links = "\n".join(f'  <li><a href="{n}">{html.escape(t)}</a> (<a href="{n}#demo">demo file</a>, '
                          f'<a href="{n}#demo-wrong-type">text file</a>)</li>' for n, t in pages)
        f.write(f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Pattern 22</title></head>\n"
                f"<body>\n<h1>Direct browser upload to s3://{html.escape(args.bucket)}</h1>\n<ul>\n{links}\n</ul>\n"
                f"</body></html>\n")
    if not args.no_bucket_setup:
        print(f"bucket {args.bucket} ready at {args.endpoint} (ObjectWriter, no public access block)")
    print(f"forms for {action} written to {args.out}")
    for name, title in pages:
        print(f"  {name:22} {title}")
    print(f"  redirect after upload: {args.redirect}")

    if args.serve:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=args.out)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", args.serve), handler)
        print(f"serving {args.out} on http://127.0.0.1:{args.serve}/  (Ctrl-C to stop)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
