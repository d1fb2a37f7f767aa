"""S3 POST Object: browser-form uploads with a signed policy (catalogue pattern 22).

Two layers:

* plain HTTP (`requests`, multipart/form-data built by urllib3): both signature
  forms (SigV2 HMAC-SHA1 with AWSAccessKeyId/policy/signature, SigV4 with
  x-amz-algorithm/-credential/-date/-signature), every condition kind passing and
  failing, expiry, content-length-range, extra fields, ${filename},
  success_action_status / success_action_redirect, metadata, acl public-read,
  and signature checking under `--auth enforce`;
* a real headless Chromium submitting a real HTML form (file input filled through
  DataTransfer, form.submit()), multipart-encoded by the browser, redirected by S3
  back to a loopback page, or shown S3's XML error.

Expected values are AWS's (messages as S3 words them). nimbus's default "open" auth
mode skips the signature math but still enforces expiry and every condition; the
signature itself is checked by a separate `--auth enforce` server.
"""
import base64
import datetime
import hashlib
import hmac
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import requests

from conftest import Server
from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)

ACCESS_KEY, SECRET_KEY = "test", "test"
V4_ALGORITHM = "AWS4-HMAC-SHA256"
# The start and end markers of a JPEG around a few bytes: enough for a browser upload.
JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00nimbus-pattern-22" + bytes([0xFF, 0xD9])


# --- building signed forms ---------------------------------------------------------

def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _v4_signing_key(secret, date, region, service="s3"):
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def signed_form(kind, fields, conditions, *, expires_in=300, access_key=ACCESS_KEY,
                secret=SECRET_KEY, region=REGION):
    """The ordered fields of a POST form signed as `kind` ("v2" or "v4"): `fields`
    (pairs, sent first), then the signature fields. The policy holds `conditions`
    and, for SigV4, the x-amz-algorithm/-credential/-date conditions every SigV4
    form needs (they are form fields like any other)."""
    now = _utcnow()
    conditions = list(conditions)
    auth = []
    if kind == "v4":
        date, amz_date = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
        credential = f"{access_key}/{date}/{region}/s3/aws4_request"
        auth = [("x-amz-algorithm", V4_ALGORITHM), ("x-amz-credential", credential), ("x-amz-date", amz_date)]
        conditions += [{k: v} for k, v in auth]
    policy = {"expiration": _iso(now + datetime.timedelta(seconds=expires_in)), "conditions": conditions}
    policy_b64 = base64.b64encode(json.dumps(policy).encode()).decode()
    if kind == "v2":
        sig = base64.b64encode(hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()).decode()
        return list(fields) + [("AWSAccessKeyId", access_key), ("policy", policy_b64), ("signature", sig)]
    assert kind == "v4", kind
    sig = hmac.new(_v4_signing_key(secret, date, region), policy_b64.encode(), hashlib.sha256).hexdigest()
    return list(fields) + auth + [("policy", policy_b64), ("x-amz-signature", sig)]


def post(endpoint, bucket, form, body=JPEG, filename="photo.jpg", content_type="image/jpeg"):
    """POSTs the form with the file as the last part, as a browser does."""
    return requests.post(f"{endpoint}/{bucket}", data=form,
                         files={"file": (filename, body, content_type)}, allow_redirects=False)


def s3_error(r, status_code, code, message=None):
    """Asserts S3's XML error document; returns its root element."""
    assert r.status_code == status_code, r.text
    assert r.headers.get("Content-Type", "").startswith("application/xml"), r.headers
    root = ET.fromstring(r.content)
    assert root.tag == "Error", r.text
    assert root.findtext("Code") == code, r.text
    if message is not None:
        assert root.findtext("Message") == message, r.text
    return root


def condition_failed(condition):
    return f"Invalid according to Policy: Policy Condition failed: {condition}"


def assert_absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert status(e) == 404


def location_headers(r):
    return r.raw._original_response.msg.get_all("Location") or []


@pytest.fixture(params=["v2", "v4"])
def kind(request):
    return request.param


@pytest.fixture
def public_bucket(s3, bucket):
    """A bucket that lets objects be public: ACLs enabled (ObjectWriter) and Block
    Public Access removed, the two settings AWS's defaults since 2023 turn off."""
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.delete_public_access_block(Bucket=bucket)
    return bucket


def pattern_conditions(bucket, redirect, key_prefix="uploads/"):
    """Pattern 22's policy: key under uploads/, this bucket, acl public-read, the redirect, a JPEG."""
    return [
        {"bucket": bucket},
        ["starts-with", "$key", key_prefix],
        {"acl": "public-read"},
        {"success_action_redirect": redirect},
        ["starts-with", "$Content-Type", "image/jpeg"],
    ]


def pattern_fields(key, redirect, content_type="image/jpeg"):
    return [("key", key), ("acl", "public-read"), ("success_action_redirect", redirect),
            ("Content-Type", content_type)]


# --- uploads and responses -----------------------------------------------------------

def test_post_default_204(endpoint, s3, bucket, kind):
    form = signed_form(kind, [("key", "uploads/a.jpg"), ("Content-Type", "image/jpeg")], [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], ["starts-with", "$Content-Type", "image/"]])
    r = post(endpoint, bucket, form)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers["ETag"] == f'"{md5_hex(JPEG)}"'
    got = s3.get_object(Bucket=bucket, Key="uploads/a.jpg")
    assert got["Body"].read() == JPEG
    assert got["ContentType"] == "image/jpeg"
    assert got["ETag"] == f'"{md5_hex(JPEG)}"'


def test_success_action_status_201(endpoint, s3, bucket, kind):
    key = "uploads/my photo.jpg"
    form = signed_form(kind, [("key", key), ("success_action_status", "201")], [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], {"success_action_status": "201"}])
    r = post(endpoint, bucket, form)
    assert r.status_code == 201, r.text
    root = ET.fromstring(r.content)
    assert root.tag == "PostResponse"
    assert root.findtext("Bucket") == bucket
    assert root.findtext("Key") == key
    assert root.findtext("ETag") == f'"{md5_hex(JPEG)}"'
    assert root.findtext("Location").endswith(f"/{bucket}/uploads/my%20photo.jpg")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == JPEG


@pytest.mark.parametrize("value, expected", [("200", 200), ("204", 204), ("302", 204), ("nonsense", 204)])
def test_success_action_status_other(endpoint, s3, bucket, value, expected):
    # 200 and 204 answer with an empty body; any other value is ignored (204).
    form = signed_form("v2", [("key", "k.bin"), ("success_action_status", value)], [
        {"bucket": bucket}, {"key": "k.bin"}, {"success_action_status": value}])
    r = post(endpoint, bucket, form)
    assert r.status_code == expected, r.text
    assert r.content == b""
    assert r.headers["ETag"] == f'"{md5_hex(JPEG)}"'
    assert s3.head_object(Bucket=bucket, Key="k.bin")["ContentLength"] == len(JPEG)


def test_success_action_redirect_303(endpoint, s3, bucket, kind):
    redirect = "https://app.example.com/uploaded"
    key = "uploads/a b.jpg"
    form = signed_form(kind, [("key", key), ("success_action_redirect", redirect)], [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], {"success_action_redirect": redirect}])
    r = post(endpoint, bucket, form)
    assert r.status_code == 303, r.text
    locations = location_headers(r)
    assert len(locations) == 1, f"one Location header expected, got {locations}"
    url = urllib.parse.urlsplit(locations[0])
    assert f"{url.scheme}://{url.netloc}{url.path}" == redirect
    q = urllib.parse.parse_qs(url.query)
    assert q == {"bucket": [bucket], "key": [key], "etag": [f'"{md5_hex(JPEG)}"']}
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == JPEG


def test_success_action_redirect_keeps_query(endpoint, bucket):
    redirect = "https://app.example.com/uploaded?from=form"
    form = signed_form("v2", [("key", "k"), ("success_action_redirect", redirect)], [
        {"bucket": bucket}, {"key": "k"}, {"success_action_redirect": redirect}])
    r = post(endpoint, bucket, form)
    assert r.status_code == 303, r.text
    locations = location_headers(r)
    assert len(locations) == 1, f"one Location header expected, got {locations}"
    assert locations[0].startswith(redirect + "&")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(locations[0]).query)
    assert q["from"] == ["form"] and q["bucket"] == [bucket] and q["key"] == ["k"]


def test_filename_variable(endpoint, s3, bucket, kind):
    form = signed_form(kind, [("key", "uploads/${filename}"), ("success_action_status", "201")], [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], {"success_action_status": "201"}])
    r = post(endpoint, bucket, form, filename="holiday.jpg")
    assert r.status_code == 201, r.text
    assert ET.fromstring(r.content).findtext("Key") == "uploads/holiday.jpg"
    assert s3.get_object(Bucket=bucket, Key="uploads/holiday.jpg")["Body"].read() == JPEG


def test_metadata_and_headers_stored(endpoint, s3, bucket, kind):
    fields = [("key", "uploads/m.jpg"), ("Content-Type", "image/jpeg"),
              ("Cache-Control", "max-age=60"), ("Content-Disposition", 'inline; filename="m.jpg"'),
              ("x-amz-meta-owner", "alice"), ("x-amz-meta-album", "summer 2024")]
    form = signed_form(kind, fields, [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], ["starts-with", "$Content-Type", "image/jpeg"],
        {"Cache-Control": "max-age=60"}, ["starts-with", "$Content-Disposition", "inline"],
        {"x-amz-meta-owner": "alice"}, ["starts-with", "$x-amz-meta-album", ""]])
    r = post(endpoint, bucket, form, content_type="application/octet-stream")
    assert r.status_code == 204, r.text
    h = s3.head_object(Bucket=bucket, Key="uploads/m.jpg")
    # The Content-Type form field is stored, not the file part's own header.
    assert h["ContentType"] == "image/jpeg"
    assert h["CacheControl"] == "max-age=60"
    assert h["ContentDisposition"] == 'inline; filename="m.jpg"'
    assert h["Metadata"] == {"owner": "alice", "album": "summer 2024"}
    assert h["ContentLength"] == len(JPEG)


def test_ignored_fields_need_no_condition(endpoint, s3, bucket):
    # x-ignore-* fields (and the signature fields) need no condition.
    form = signed_form("v2", [("key", "k"), ("x-ignore-note", "anything")], [{"bucket": bucket}, {"key": "k"}])
    r = post(endpoint, bucket, form)
    assert r.status_code == 204, r.text
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == len(JPEG)


# --- conditions ----------------------------------------------------------------------

# (id, conditions besides {"bucket": B}, fields besides key, key, failing condition as S3 prints it or None)
CONDITION_CASES = [
    ("eq-object-pass", [{"key": "uploads/x.jpg"}], [], "uploads/x.jpg", None),
    ("eq-object-fail", [{"key": "uploads/x.jpg"}], [], "uploads/y.jpg",
     '["eq", "$key", "uploads/x.jpg"]'),
    ("eq-array-pass", [["starts-with", "$key", ""], ["eq", "$acl", "private"]], [("acl", "private")], "k", None),
    ("eq-array-fail", [["starts-with", "$key", ""], ["eq", "$acl", "private"]], [("acl", "public-read")], "k",
     '["eq", "$acl", "private"]'),
    ("eq-missing-field", [["starts-with", "$key", ""], {"x-amz-meta-owner": "alice"}], [], "k",
     '["eq", "$x-amz-meta-owner", "alice"]'),
    ("starts-with-key-pass", [["starts-with", "$key", "uploads/"]], [], "uploads/x.jpg", None),
    ("starts-with-key-fail", [["starts-with", "$key", "uploads/"]], [], "other/x.jpg",
     '["starts-with", "$key", "uploads/"]'),
    ("starts-with-content-type-pass", [["starts-with", "$key", ""], ["starts-with", "$Content-Type", "image/jpeg"]],
     [("Content-Type", "image/jpeg")], "k", None),
    ("starts-with-content-type-fail", [["starts-with", "$key", ""], ["starts-with", "$Content-Type", "image/jpeg"]],
     [("Content-Type", "image/png")], "k", '["starts-with", "$Content-Type", "image/jpeg"]'),
    ("starts-with-empty-any", [["starts-with", "$key", ""], ["starts-with", "$x-amz-meta-note", ""]],
     [("x-amz-meta-note", "whatever")], "k", None),
    ("redirect-pass", [["starts-with", "$key", ""], ["starts-with", "$success_action_redirect", "https://app.example.com/"]],
     [("success_action_redirect", "https://app.example.com/done")], "k", None),
    ("redirect-fail", [["starts-with", "$key", ""], {"success_action_redirect": "https://app.example.com/done"}],
     [("success_action_redirect", "https://evil.example.net/done")], "k",
     '["eq", "$success_action_redirect", "https://app.example.com/done"]'),
]


@pytest.mark.parametrize("conditions, fields, key, failed", [c[1:] for c in CONDITION_CASES],
                         ids=[c[0] for c in CONDITION_CASES])
def test_condition(endpoint, s3, bucket, kind, conditions, fields, key, failed):
    form = signed_form(kind, [("key", key)] + fields, [{"bucket": bucket}] + conditions)
    r = post(endpoint, bucket, form)
    if failed is None:
        assert r.status_code in (204, 303), r.text
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == JPEG
    else:
        s3_error(r, 403, "AccessDenied", condition_failed(failed))
        assert_absent(s3, bucket, key)


def test_bucket_condition_fails_for_other_bucket(endpoint, s3, bucket, kind):
    form = signed_form(kind, [("key", "k")], [{"bucket": "some-other-bucket"}, {"key": "k"}])
    r = post(endpoint, bucket, form)
    s3_error(r, 403, "AccessDenied", condition_failed('["eq", "$bucket", "some-other-bucket"]'))
    assert_absent(s3, bucket, "k")


def test_expired_policy(endpoint, s3, bucket, kind):
    form = signed_form(kind, [("key", "uploads/x.jpg")], [{"bucket": bucket}, ["starts-with", "$key", "uploads/"]],
                       expires_in=-60)
    r = post(endpoint, bucket, form)
    s3_error(r, 403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    assert_absent(s3, bucket, "uploads/x.jpg")


def test_extra_field_not_in_policy(endpoint, s3, bucket, kind):
    form = signed_form(kind, [("key", "k"), ("x-amz-meta-extra", "1")], [{"bucket": bucket}, {"key": "k"}])
    r = post(endpoint, bucket, form)
    s3_error(r, 403, "AccessDenied", "Invalid according to Policy: Extra input fields: x-amz-meta-extra")
    assert_absent(s3, bucket, "k")


def test_content_length_range(endpoint, s3, bucket, kind):
    form = lambda: signed_form(kind, [("key", "k")], [  # noqa: E731
        {"bucket": bucket}, {"key": "k"}, ["content-length-range", 5, 10]])
    # Both bounds are inclusive.
    for size in (5, 10):
        r = post(endpoint, bucket, form(), body=b"x" * size)
        assert r.status_code == 204, r.text
        assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == size
    s3.delete_object(Bucket=bucket, Key="k")

    root = s3_error(post(endpoint, bucket, form(), body=b"x" * 11), 400, "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size")
    assert root.findtext("ProposedSize") == "11"
    assert root.findtext("MaxSizeAllowed") == "10"
    assert_absent(s3, bucket, "k")

    root = s3_error(post(endpoint, bucket, form(), body=b"x" * 2), 400, "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size")
    assert root.findtext("ProposedSize") == "2"
    assert root.findtext("MinSizeAllowed") == "5"
    assert_absent(s3, bucket, "k")


def test_content_length_range_large_file_streamed(endpoint, s3, bucket):
    # A file well past the limit is refused (the body is counted as it arrives).
    form = signed_form("v4", [("key", "big")], [{"bucket": bucket}, {"key": "big"},
                                                 ["content-length-range", 0, 1024 * 1024]])
    r = post(endpoint, bucket, form, body=b"\0" * (3 * 1024 * 1024))
    root = s3_error(r, 400, "EntityTooLarge")
    assert root.findtext("MaxSizeAllowed") == str(1024 * 1024)
    assert_absent(s3, bucket, "big")


def test_missing_key_field(endpoint, bucket, kind):
    form = signed_form(kind, [], [{"bucket": bucket}])
    r = post(endpoint, bucket, form)
    s3_error(r, 400, "InvalidArgument",
             "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.")


# --- acl public-read -----------------------------------------------------------------

def test_acl_public_read_anonymous_get(endpoint, s3, public_bucket, kind):
    bucket = public_bucket
    redirect = "https://app.example.com/done"
    form = signed_form(kind, pattern_fields("uploads/pub.jpg", redirect), pattern_conditions(bucket, redirect))
    r = post(endpoint, bucket, form)
    assert r.status_code == 303, r.text
    anon = requests.get(f"{endpoint}/{bucket}/uploads/pub.jpg")
    assert anon.status_code == 200, anon.text
    assert anon.content == JPEG
    assert anon.headers["Content-Type"] == "image/jpeg"
    grants = s3.get_object_acl(Bucket=bucket, Key="uploads/pub.jpg")["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
            "Permission": "READ"} in grants


def test_acl_private_stays_private(endpoint, public_bucket):
    bucket = public_bucket
    form = signed_form("v2", [("key", "uploads/priv.jpg"), ("acl", "private")], [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], {"acl": "private"}])
    assert post(endpoint, bucket, form).status_code == 204
    anon = requests.get(f"{endpoint}/{bucket}/uploads/priv.jpg")
    s3_error(anon, 403, "AccessDenied")


def test_acl_public_read_refused_when_acls_disabled(endpoint, s3, bucket):
    # A new bucket is BucketOwnerEnforced: a form asking for an ACL other than
    # bucket-owner-full-control is refused, as PutObject with that ACL is.
    form = signed_form("v2", [("key", "uploads/x.jpg"), ("acl", "public-read")], [
        {"bucket": bucket}, ["starts-with", "$key", "uploads/"], {"acl": "public-read"}])
    r = post(endpoint, bucket, form)
    s3_error(r, 400, "AccessControlListNotSupported", "The bucket does not allow ACLs")
    assert_absent(s3, bucket, "uploads/x.jpg")


# --- signatures under --auth enforce ---------------------------------------------------

@pytest.fixture(scope="module")
def enforced():
    s = Server("--auth", "enforce").start()  # root keys test/test by default
    yield s
    s.stop()


@pytest.fixture
def enforced_bucket(enforced):
    s3 = make_s3(enforced.endpoint)
    name = bucket_name("post")
    s3.create_bucket(Bucket=name)
    yield enforced.endpoint, s3, name
    empty_and_delete(s3, name)


def test_enforce_good_signature(enforced_bucket, kind):
    endpoint, s3, bucket = enforced_bucket
    form = signed_form(kind, [("key", "uploads/ok.jpg")], [{"bucket": bucket}, ["starts-with", "$key", "uploads/"]])
    r = post(endpoint, bucket, form)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="uploads/ok.jpg")["Body"].read() == JPEG


def test_enforce_bad_signature(enforced_bucket, kind):
    endpoint, s3, bucket = enforced_bucket
    form = signed_form(kind, [("key", "uploads/bad.jpg")], [{"bucket": bucket}, ["starts-with", "$key", "uploads/"]],
                       secret="not-the-secret")
    r = post(endpoint, bucket, form)
    s3_error(r, 403, "SignatureDoesNotMatch",
             "The request signature we calculated does not match the signature you provided. "
             "Check your key and signing method.")
    assert_absent(s3, bucket, "uploads/bad.jpg")


def test_enforce_tampered_policy(enforced_bucket):
    # The signature covers the policy as sent: a policy edited after signing is refused.
    endpoint, s3, bucket = enforced_bucket
    form = signed_form("v2", [("key", "uploads/t.jpg")], [{"bucket": bucket}, ["starts-with", "$key", "uploads/"]])
    forged = json.dumps({"expiration": _iso(_utcnow() + datetime.timedelta(hours=1)),
                         "conditions": [{"bucket": bucket}, ["starts-with", "$key", ""]]})
    form = [(k, base64.b64encode(forged.encode()).decode() if k == "policy" else v) for k, v in form]
    form = [(k, "anything/" if k == "key" else v) for k, v in form]
    s3_error(post(endpoint, bucket, form), 403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "anything/")


def test_enforce_unknown_access_key(enforced_bucket, kind):
    endpoint, s3, bucket = enforced_bucket
    form = signed_form(kind, [("key", "k")], [{"bucket": bucket}, {"key": "k"}], access_key="AKIANOSUCHKEY0000000")
    s3_error(post(endpoint, bucket, form), 403, "InvalidAccessKeyId",
             "The AWS Access Key Id you provided does not exist in our records.")


# --- a real browser ------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome",
                  "headless_shell")


def find_chromium():
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    path = find_chromium()
    if not path:
        pytest.skip("no chromium binary found (scripts/test installs it with apt-get when it can)")
    return path


def run_browser(chromium, url, profile_dir):
    """Loads `url` in headless Chromium, lets the page's scripts, the form submission
    and any redirect run, and returns the final DOM as text."""
    args = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile_dir}",
            "--virtual-time-budget=10000", "--dump-dom", url]
    p = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def browser_summary(dom):
    """For assertion messages: Chromium's network error codes in the page, and its text."""
    errors = sorted(set(re.findall(r"\bERR_[A-Z_]+", dom)))
    text = " ".join(re.sub(r"(?s)<(script|style|template)\b.*?</\1>|<[^>]+>", " ", dom).split())
    return f"browser errors {errors}; page text: {text[:1500]!r}"


class FormSite:
    """A loopback web site for the browser: serves the form pages, and records each
    hit on /done (where success_action_redirect points) with its query."""

    def __init__(self, done_path="/done"):
        self.pages = {}
        self.hits = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == done_path:
                    site.hits.append(urllib.parse.parse_qs(url.query))
                if url.path == done_path and url.path not in site.pages:
                    body = b"<!doctype html><html><body><p id='result'>upload-done</p></body></html>"
                elif url.path in site.pages:
                    body = site.pages[url.path].encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site():
    s = FormSite()
    yield s
    s.close()


def form_page(action, fields, file_bytes, filename="photo.jpg", file_type="image/jpeg"):
    """An HTML upload form: the signed fields as hidden inputs, then the file input
    (last, as S3 requires). On load the script puts a File into the input through
    DataTransfer, as a user picking a file would, and submits the form: Chromium
    encodes the multipart body itself."""
    inputs = "\n".join(f'    <input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                       for k, v in fields)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>upload</title></head>
<body>
  <form id="upload" action="{html.escape(action)}" method="post" enctype="multipart/form-data">
{inputs}
    <input type="file" name="file" id="file">
    <input type="submit" value="Upload">
  </form>
  <script>
    const bytes = new Uint8Array({json.dumps(list(file_bytes))});
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], {json.dumps(filename)}, {{type: {json.dumps(file_type)}}}));
    const input = document.getElementById("file");
    input.files = dt.files;
    window.addEventListener("load", () => document.getElementById("upload").submit());
  </script>
</body></html>
"""


def test_browser_upload_and_redirect(chromium, tmp_path, endpoint, s3, public_bucket, site, kind):
    bucket = public_bucket
    redirect = site.url("/done")
    form = signed_form(kind, pattern_fields("uploads/${filename}", redirect), pattern_conditions(bucket, redirect))
    site.pages["/form.html"] = form_page(f"{endpoint}/{bucket}", form, JPEG)
    dom = run_browser(chromium, site.url("/form.html"), tmp_path / "profile")

    key = "uploads/photo.jpg"
    etag = f'"{md5_hex(JPEG)}"'
    # The upload landed, with the browser's bytes and the form's Content-Type...
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == JPEG
    assert got["ContentType"] == "image/jpeg"
    assert got["ETag"] == etag
    # ...and the browser followed S3's 303 to the redirect page.
    assert site.hits == [{"bucket": [bucket], "key": [key], "etag": [etag]}], browser_summary(dom)
    assert "upload-done" in dom
    anon = requests.get(f"{endpoint}/{bucket}/{key}")
    assert anon.status_code == 200 and anon.content == JPEG


@pytest.mark.parametrize("breaking", ["expired", "content-type"])
def test_browser_upload_refused(chromium, tmp_path, endpoint, s3, public_bucket, site, kind, breaking):
    bucket = public_bucket
    redirect = site.url("/done")
    content_type = "text/plain" if breaking == "content-type" else "image/jpeg"
    form = signed_form(kind, pattern_fields("uploads/${filename}", redirect, content_type),
                       pattern_conditions(bucket, redirect), expires_in=-60 if breaking == "expired" else 300)
    filename = "notes.txt" if breaking == "content-type" else "photo.jpg"
    site.pages["/form.html"] = form_page(f"{endpoint}/{bucket}", form, b"not a jpeg at all", filename, content_type)
    dom = run_browser(chromium, site.url("/form.html"), tmp_path / "profile")

    # The browser shows S3's XML error; nothing was stored and nobody was redirected.
    assert "AccessDenied" in dom, browser_summary(dom)
    if breaking == "expired":
        assert "Invalid according to Policy: Policy expired." in dom
    else:
        assert ('Invalid according to Policy: Policy Condition failed: '
                '["starts-with", "$Content-Type", "image/jpeg"]') in html.unescape(dom)
    assert site.hits == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
