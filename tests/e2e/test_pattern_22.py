"""Pattern 22 (patterns/22-direct-object-upload): make_form.py run against the test
server, its forms submitted as written, first by plain HTTP then by headless Chromium."""
import html.parser
import os
import subprocess
import sys
import urllib.parse

import pytest
import requests

from conftest import ROOT
from s3_helpers import *  # noqa: F401,F403
from test_s3_post import FormSite, browser_summary, chromium, run_browser, s3_error  # noqa: F401

SCRIPT = os.path.join(ROOT, "patterns", "22-direct-object-upload", "make_form.py")
JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00pattern-22" + bytes([0xFF, 0xD9])
# The JPEG the pages build for #demo (see make_form.py).
DEMO_JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0x49, 0x46, 0x00, 0xFF, 0xD9])
FORMS = ["form-v2.html", "form-v4.html", "form-v2-expired.html", "form-v4-expired.html"]


class FormParser(html.parser.HTMLParser):
    """The action and the named inputs, in order, of the page's form."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.file_inputs = None, [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a["action"]
        elif tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type") == "file":
            self.file_inputs += 1


def read_form(path):
    p = FormParser()
    with open(path) as f:
        p.feed(f.read())
    return p


@pytest.fixture
def site():
    s = FormSite(done_path="/done.html")
    yield s
    s.close()


@pytest.fixture
def pattern(endpoint, s3, site, tmp_path):
    """Runs make_form.py for a fresh bucket; the site serves its pages, /done.html is the redirect."""
    bucket = bucket_name("p22")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, SCRIPT, "--endpoint", endpoint, "--bucket", bucket, "--out", str(out),
                        "--redirect", site.url("/done.html")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"written to {out}" in p.stdout
    for name in os.listdir(out):
        with open(out / name) as f:
            site.pages["/" + name] = f.read()
    yield bucket, out
    empty_and_delete(s3, bucket)


def test_script_prepares_bucket_and_forms(s3, pattern, endpoint):
    bucket, out = pattern
    assert sorted(os.listdir(out)) == sorted(FORMS + ["done.html", "index.html"])
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "ObjectWriter"}]
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert code(e) == "NoSuchPublicAccessBlockConfiguration"
    v2, v4 = read_form(out / "form-v2.html"), read_form(out / "form-v4.html")
    for form in (v2, v4):
        assert form.action == f"{endpoint}/{bucket}"
        assert form.file_inputs == 1
        assert form.fields[0] == ("key", "uploads/${filename}")
    assert {"AWSAccessKeyId", "policy", "signature"} <= {k for k, _ in v2.fields}
    assert {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "policy"} <= {k for k, _ in v4.fields}


@pytest.mark.parametrize("kind", ["v2", "v4"])
def test_forms_over_http(s3, pattern, site, kind):
    """The forms as a browser would send them: the upload lands, public; the policy refuses the rest."""
    bucket, out = pattern
    form = read_form(out / f"form-{kind}.html")
    r = requests.post(form.action, data=form.fields, files={"file": ("cat.jpg", JPEG, "image/jpeg")},
                      allow_redirects=False)
    assert r.status_code == 303, r.text
    locations = r.raw._original_response.msg.get_all("Location")
    assert len(locations) == 1 and locations[0].startswith(site.url("/done.html?")), locations
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(locations[0]).query)
    assert q == {"bucket": [bucket], "key": ["uploads/cat.jpg"], "etag": [f'"{md5_hex(JPEG)}"']}
    anon = requests.get(f"{form.action}/uploads/cat.jpg")
    assert anon.status_code == 200 and anon.content == JPEG
    assert anon.headers["Content-Type"] == "image/jpeg"

    # A PNG: the page would copy its type into Content-Type.
    fields = [(k, "image/png" if k == "Content-Type" else v) for k, v in form.fields]
    r = requests.post(form.action, data=fields, files={"file": ("dog.png", b"\x89PNG", "image/png")})
    s3_error(r, 403, "AccessDenied", 'Invalid according to Policy: Policy Condition failed: '
                                     '["starts-with", "$Content-Type", "image/jpeg"]')
    # An empty file breaks content-length-range.
    r = requests.post(form.action, data=form.fields, files={"file": ("empty.jpg", b"", "image/jpeg")})
    s3_error(r, 400, "EntityTooSmall")

    expired = read_form(out / f"form-{kind}-expired.html")
    r = requests.post(expired.action, data=expired.fields, files={"file": ("late.jpg", JPEG, "image/jpeg")})
    s3_error(r, 403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/cat.jpg"]


@pytest.mark.parametrize("kind", ["v2", "v4"])
def test_forms_in_browser(chromium, tmp_path, s3, pattern, site, kind, endpoint):
    bucket, _ = pattern
    dom = run_browser(chromium, site.url(f"/form-{kind}.html#demo"), tmp_path / "profile")
    etag = f'"{md5_hex(DEMO_JPEG)}"'
    got = s3.get_object(Bucket=bucket, Key="uploads/demo.jpg")
    assert got["Body"].read() == DEMO_JPEG
    assert got["ContentType"] == "image/jpeg"
    assert site.hits == [{"bucket": [bucket], "key": ["uploads/demo.jpg"], "etag": [etag]}], browser_summary(dom)
    # done.html shows what S3 put in the redirect.
    assert f"upload-done bucket={bucket} key=uploads/demo.jpg etag={etag}" in html.unescape(dom)

    for page in (f"form-{kind}.html#demo-wrong-type", f"form-{kind}-expired.html#demo"):
        dom = run_browser(chromium, site.url("/" + page), tmp_path / "profile")
        assert "AccessDenied" in dom, f"{page}: {browser_summary(dom)}"
    assert "Policy expired." in dom
    assert len(site.hits) == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/demo.jpg"]
