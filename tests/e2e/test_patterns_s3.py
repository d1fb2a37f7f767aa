"""Patterns 10, 11, 12 and 34 (patterns/<n>-*/run.sh) run against the session server.

Each run.sh is the user's walk-through: it prints every observation of the pattern as it
checks it and exits non-zero if one fails. The tests run it as a user would (stock `aws`
CLI from this venv first on PATH, test credentials, AWS_ENDPOINT_URL at the server),
assert it passed, and check the main observations again on their own with boto3 and
plain HTTP.
"""
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import requests

from conftest import ROOT, Server
from s3_helpers import *  # noqa: F401,F403  (fixture s3, helpers)

PATTERNS = os.path.join(ROOT, "patterns")
LOGROTATE = "/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate") else shutil.which("logrotate")


def run_pattern(folder, endpoint, *args, keep=None, timeout=240):
    """Runs patterns/<folder>/run.sh; returns (stdout, bucket). With keep (a list), passes
    --keep and adds the bucket to it before asserting, so teardown removes it either way."""
    if keep is not None:
        args = (*args, "--keep")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL": endpoint,
    })
    p = subprocess.run(["bash", os.path.join(PATTERNS, folder, "run.sh"), *args],
                       capture_output=True, text=True, env=env, timeout=timeout)
    out = p.stdout + p.stderr
    m = re.search(r"^bucket: (\S+)$", p.stdout, re.M)
    if m and keep is not None:
        keep.append(m.group(1))
    assert p.returncode == 0, f"{folder}/run.sh exited {p.returncode}:\n{out}"
    assert "FAIL" not in p.stdout, out
    assert m, out
    return p.stdout, m.group(1)


def ok_lines(out):
    return [line.strip()[len("ok"):].strip() for line in out.splitlines() if line.strip().startswith("ok ")]


@pytest.fixture
def kept(s3):
    """Buckets the scripts left with --keep; emptied and deleted afterwards."""
    names = []
    yield names
    for name in names:
        empty_and_delete(s3, name)


def test_pattern_10_high_availability_storage(endpoint, s3, kept):
    out, bucket = run_pattern("10-high-availability-storage", endpoint, keep=kept)
    assert "pattern 10: all observations hold" in out
    oks = ok_lines(out)
    key = "downloads/nimbus-demo.zip"
    url = f"{endpoint}/{bucket}/{key}"
    assert f"anonymous GET {url} -> 403" in oks
    assert any(o.startswith("put-bucket-policy refused: AccessDenied") for o in oks), out
    assert f"anonymous GET {url} -> 200" in oks
    assert f"the page links to {url}" in oks

    # The state the script left, seen on its own.
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert code(e) == "NoSuchPublicAccessBlockConfiguration"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    [st] = policy["Statement"]
    assert (st["Effect"], st["Principal"], st["Action"]) == ("Allow", "*", "s3:GetObject")
    r = requests.get(url)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "demo/README.txt" in names
    page = requests.get(f"{endpoint}/{bucket}/index.html")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert f'href="{url}"' in page.text
    # Reading only: anonymous writes and listings stay refused.
    assert requests.put(f"{endpoint}/{bucket}/x.zip", data=b"x").status_code == 403
    assert requests.get(f"{endpoint}/{bucket}?list-type=2").status_code == 403


def test_pattern_11_direct_storage_hosting(endpoint, s3, kept):
    out, bucket = run_pattern("11-direct-storage-hosting", endpoint, keep=kept)
    assert "pattern 11: all observations hold" in out
    oks = ok_lines(out)
    for form in ("host", "path"):
        assert any(o.startswith(f"GET / ({form} form) -> 403 text/html") for o in oks), out
        assert any(o.startswith(f"GET /no-such-page.html ({form} form) -> 403 text/html") for o in oks), out
        assert any(o.startswith(f"GET /no-such-page.html ({form} form) -> 404 text/html") for o in oks), out
        assert any(o.startswith(f"GET /css/site.css ({form} form) -> 200 text/css") for o in oks), out

    site = os.path.join(PATTERNS, "11-direct-storage-hosting", "site")
    index = open(os.path.join(site, "index.html"), "rb").read()
    error = open(os.path.join(site, "error.html"), "rb").read()
    cfg = s3.get_bucket_website(Bucket=bucket)
    assert cfg["IndexDocument"] == {"Suffix": "index.html"}
    assert cfg["ErrorDocument"] == {"Key": "error.html"}
    port = endpoint.rsplit(":", 1)[1]
    host = {"Host": f"{bucket}.s3-website.localhost:{port}"}
    for base, headers in ((endpoint, host), (f"{endpoint}/_nimbus/website/{bucket}", {})):
        r = requests.get(base + "/", headers=headers)
        assert r.status_code == 200 and r.content == index
        assert r.headers["Content-Type"].startswith("text/html")
        r = requests.get(base + "/missing/page.html", headers=headers)
        assert r.status_code == 404 and r.content == error
        assert r.headers["Content-Type"].startswith("text/html")
        r = requests.get(base + "/img/logo.svg", headers=headers)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/svg+xml"
    # The REST endpoint does not serve the index document.
    r = requests.get(f"{endpoint}/{bucket}/")
    assert b"<ListBucketResult" in r.content


def test_pattern_12_private_data_delivery(endpoint, s3, kept):
    out, bucket = run_pattern("12-private-data-delivery", endpoint, "--ttl", "3", keep=kept)
    assert "pattern 12: all observations hold" in out
    oks = ok_lines(out)
    for name in ("LEGACY", "SIGV4"):
        assert f"GET the {name} link -> 200" in oks
        assert f"GET the {name} link after expiry -> 403" in oks
        assert f"{name} link: Request has expired" in oks
    legacy = re.search(r"^  legacy link: (\S+)$", out, re.M).group(1)
    sigv4 = re.search(r"^  SigV4 link:  (\S+)$", out, re.M).group(1)
    assert re.search(r"\?AWSAccessKeyId=test&Expires=\d+&Signature=", legacy)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in sigv4 and "X-Amz-Expires=3" in sigv4
    for link in (legacy, sigv4):
        r = requests.get(link)
        assert r.status_code == 403
        assert "<Code>AccessDenied</Code>" in r.text and "Request has expired" in r.text
    # The object itself stayed private.
    key = "reports/2024-q3.csv"
    assert requests.get(f"{endpoint}/{bucket}/{key}").status_code == 403
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().startswith(b"region,revenue")


@pytest.fixture(scope="module")
def enforcing_server():
    s = Server("--auth", "enforce").start()
    yield s
    s.stop()


def test_pattern_12_signatures_verified(enforcing_server):
    """Under --auth enforce the links are really checked: the legacy signature the login
    page computes and the CLI's SigV4 link both pass, and an edited link is refused."""
    out, _ = run_pattern("12-private-data-delivery", enforcing_server.endpoint, "--ttl", "3")
    assert "signature checking (nimbus --auth): enforce" in out
    oks = ok_lines(out)
    assert "GET the LEGACY link -> 200" in oks and "GET the SIGV4 link -> 200" in oks
    assert "GET the legacy link edited to another key -> 403" in oks
    assert "edited link -> SignatureDoesNotMatch" in oks
    assert "GET the LEGACY link after expiry -> 403" in oks


def test_pattern_12_links_cli(endpoint, s3, bucket):
    """`login.py links` prints both links as JSON; both fetch the private object."""
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"secret")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=REGION)
    p = subprocess.run([sys.executable, os.path.join(PATTERNS, "12-private-data-delivery", "login.py"), "links",
                        "--endpoint", endpoint, "--bucket", bucket, "--key", "a/b.txt", "--ttl", "60"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    links = json.loads(p.stdout)
    assert links["ttl"] == 60
    for k in ("legacy", "sigv4"):
        r = requests.get(links[k])
        assert r.status_code == 200 and r.content == b"secret", (k, r.text)
    assert requests.get(f"{endpoint}/{bucket}/a/b.txt").status_code == 403


def check_archive(s3, bucket, rounds):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == rounds, keys
    assert all(k.endswith(".gz") and "/app/app.log-" in k for k in keys), keys
    for k in keys:
        text = gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).decode()
        assert len(text.splitlines()) == 50 and "request 1 GET /index.html" in text


@pytest.mark.skipif(not LOGROTATE, reason="logrotate is not installed (apt-get install logrotate)")
def test_pattern_34_web_storage_archive_logrotate(endpoint, s3, kept):
    out, bucket = run_pattern("34-web-storage-archive", endpoint, "--rounds", "3", keep=kept)
    assert "pattern 34: all observations hold" in out
    assert "rotation: " + LOGROTATE in out
    oks = ok_lines(out)
    assert "the bucket holds exactly the 3 compressed rotations" in oks
    assert "app.log and error.log stayed local" in oks
    check_archive(s3, bucket, 3)


def test_pattern_34_web_storage_archive_simulated(endpoint, s3, kept):
    out, bucket = run_pattern("34-web-storage-archive", endpoint, "--rounds", "2", "--simulate", keep=kept)
    assert "pattern 34: all observations hold" in out
    assert "rotation: SIMULATED (--simulate given)" in out
    assert "the bucket holds exactly the 2 compressed rotations" in ok_lines(out)
    check_archive(s3, bucket, 2)
