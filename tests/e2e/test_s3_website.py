"""Static website hosting and virtual-hosted-style addressing.

The website endpoint shares nimbus's port: the bucket is named by the Host header
(`BUCKET.s3-website.localhost`, `BUCKET.s3-website-us-east-1.localhost`), or by the
path form `/_nimbus/website/BUCKET/KEY` for clients without wildcard DNS. `*.localhost`
need not resolve on the test machine, so requests go to 127.0.0.1 with an explicit
Host header. Website endpoints are anonymous: objects are readable through a bucket
policy (Block Public Access removed first), and S3 answers errors with HTML pages.
"""
import json
import subprocess
import urllib.parse

import boto3
import botocore.config
import pytest
import requests

from conftest import REGION
from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)

INDEX = b"<html><body>home</body></html>"
DOCS_INDEX = b"<html><body>docs home</body></html>"
ERROR = b"<html><body>custom error page</body></html>"
PAGE = b"<html><body>a page</body></html>"


def port_of(endpoint):
    return urllib.parse.urlsplit(endpoint).port


def site_host(endpoint, bucket, form="s3-website"):
    return f"{bucket}.{form}.localhost:{port_of(endpoint)}"


def web(endpoint, bucket, path="/", method="GET", form="s3-website", headers=None):
    """A request to the website endpoint of `bucket`, Host-header form."""
    h = {"Host": site_host(endpoint, bucket, form)}
    h.update(headers or {})
    return requests.request(method, f"{endpoint}{path}", headers=h, allow_redirects=False)


def web_path(endpoint, bucket, path="/", method="GET"):
    """The same through the path form /_nimbus/website/BUCKET/KEY."""
    return requests.request(method, f"{endpoint}/_nimbus/website/{bucket}{path}", allow_redirects=False)


def read_policy(bucket, list_bucket=True):
    sts = [{"Sid": "Read", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}]
    if list_bucket:
        sts.append({"Sid": "List", "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}"})
    return json.dumps({"Version": "2012-10-17", "Statement": sts})


def make_public(s3, bucket, list_bucket=True):
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=read_policy(bucket, list_bucket))


def put_html(s3, bucket, key, body):
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/html")


@pytest.fixture
def site(s3, bucket):
    """A public website bucket with index and error documents."""
    make_public(s3, bucket)
    put_html(s3, bucket, "index.html", INDEX)
    put_html(s3, bucket, "docs/index.html", DOCS_INDEX)
    put_html(s3, bucket, "error.html", ERROR)
    put_html(s3, bucket, "page.html", PAGE)
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "error.html"},
    })
    return bucket


def assert_html_error(r, status_code, reason, error_code, head=False):
    assert r.status_code == status_code, r.text
    assert r.headers["Content-Type"].startswith("text/html"), r.headers
    if head:
        assert r.content == b""
        return
    assert f"<title>{status_code} {reason}</title>" in r.text, r.text
    assert f"<h1>{status_code} {reason}</h1>" in r.text, r.text
    assert f"<li>Code: {error_code}</li>" in r.text, r.text
    assert "<li>RequestId: " in r.text and "<li>HostId: " in r.text


# --- configuration API -------------------------------------------------------------

def test_get_and_delete_bucket_website(endpoint, s3, site):
    cfg = s3.get_bucket_website(Bucket=site)
    assert cfg["IndexDocument"] == {"Suffix": "index.html"}
    assert cfg["ErrorDocument"] == {"Key": "error.html"}
    assert "RedirectAllRequestsTo" not in cfg and "RoutingRules" not in cfg
    r = s3.delete_bucket_website(Bucket=site)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=site)
    assert err(e) == ("NoSuchWebsiteConfiguration", 404)
    assert e.value.response["Error"]["Message"] == "The specified bucket does not have a website configuration"
    r = web(endpoint, site, "/")
    assert_html_error(r, 404, "Not Found", "NoSuchWebsiteConfiguration")
    assert "<li>Message: The specified bucket does not have a website configuration</li>" in r.text
    assert f"<li>BucketName: {site}</li>" in r.text


def test_website_configuration_validation(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": ""}})
    assert err(e) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
            "RedirectAllRequestsTo": {"HostName": "example.com"},
            "IndexDocument": {"Suffix": "index.html"}})
    assert err(e) == ("InvalidArgument", 400)


# --- serving -------------------------------------------------------------------------

def test_index_document(endpoint, site):
    r = web(endpoint, site, "/")
    assert r.status_code == 200, r.text
    assert r.content == INDEX
    assert r.headers["Content-Type"] == "text/html"
    assert r.headers["ETag"] == f'"{md5_hex(INDEX)}"'
    assert r.headers["Content-Length"] == str(len(INDEX))
    assert "Last-Modified" in r.headers
    r = web(endpoint, site, "/page.html")
    assert r.status_code == 200 and r.content == PAGE
    assert r.headers["Content-Type"] == "text/html"


@pytest.mark.parametrize("form", ["s3-website", "s3-website-us-east-1", "s3-website.us-east-1"])
def test_website_host_forms(endpoint, site, form):
    r = web(endpoint, site, "/", form=form)
    assert r.status_code == 200, r.text
    assert r.content == INDEX


def test_website_path_form(endpoint, site):
    r = web_path(endpoint, site, "/")
    assert r.status_code == 200, r.text
    assert r.content == INDEX
    assert r.headers["Content-Type"] == "text/html"
    r = web_path(endpoint, site, "/docs/")
    assert r.status_code == 200 and r.content == DOCS_INDEX
    r = web_path(endpoint, site, "/nope.html")
    assert r.status_code == 404 and r.content == ERROR
    # Same-site redirects stay under the path form's prefix.
    r = web_path(endpoint, site, "/docs")
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == f"/_nimbus/website/{site}/docs/"


def test_folder_index_and_redirect(endpoint, site):
    r = web(endpoint, site, "/docs/")
    assert r.status_code == 200, r.text
    assert r.content == DOCS_INDEX
    assert r.headers["Content-Type"] == "text/html"
    # "docs" is no object, "docs/index.html" is: the browser is sent to the folder.
    r = web(endpoint, site, "/docs")
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == "/docs/"


def test_missing_key_serves_error_document(endpoint, site):
    r = web(endpoint, site, "/missing.html")
    assert r.status_code == 404
    assert r.content == ERROR
    assert r.headers["Content-Type"] == "text/html"
    # A folder without an index document is missing too.
    r = web(endpoint, site, "/empty-folder/")
    assert r.status_code == 404 and r.content == ERROR


def test_forbidden_without_list_bucket_serves_error_document(endpoint, s3, site):
    s3.put_bucket_policy(Bucket=site, Policy=read_policy(site, list_bucket=False))
    r = web(endpoint, site, "/missing.html")
    assert r.status_code == 403
    assert r.content == ERROR
    assert web(endpoint, site, "/").content == INDEX


def test_html_error_pages_without_error_document(endpoint, s3, site):
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    r = web(endpoint, site, "/missing.html")
    assert_html_error(r, 404, "Not Found", "NoSuchKey")
    assert "<li>Message: The specified key does not exist.</li>" in r.text
    assert "<li>Key: missing.html</li>" in r.text
    # Without s3:ListBucket a missing key is 403.
    s3.put_bucket_policy(Bucket=site, Policy=read_policy(site, list_bucket=False))
    r = web(endpoint, site, "/missing.html")
    assert_html_error(r, 403, "Forbidden", "AccessDenied")
    assert "<li>Message: Access Denied</li>" in r.text


def test_private_bucket_website_is_forbidden(endpoint, s3, bucket):
    put_html(s3, bucket, "index.html", INDEX)
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    r = web(endpoint, bucket, "/")
    assert_html_error(r, 403, "Forbidden", "AccessDenied")


def test_unknown_bucket(endpoint):
    name = bucket_name("nosuch")
    r = web(endpoint, name, "/")
    assert_html_error(r, 404, "Not Found", "NoSuchBucket")
    assert "<li>Message: The specified bucket does not exist</li>" in r.text
    assert f"<li>BucketName: {name}</li>" in r.text


def test_error_headers(endpoint, s3, site):
    # S3 names the error in headers too, so a HEAD or a custom error page still says it.
    for r in (web(endpoint, site, "/missing.html"), web(endpoint, site, "/missing.html", method="HEAD")):
        assert r.status_code == 404
        assert r.headers["x-amz-error-code"] == "NoSuchKey"
        assert r.headers["x-amz-error-message"] == "The specified key does not exist."
        assert r.headers["x-amz-error-detail-Key"] == "missing.html"
    s3.put_bucket_policy(Bucket=site, Policy=read_policy(site, list_bucket=False))
    r = web(endpoint, site, "/missing.html")
    assert r.status_code == 403
    assert r.headers["x-amz-error-code"] == "AccessDenied"
    assert r.headers["x-amz-error-message"] == "Access Denied"


def test_head_requests(endpoint, site):
    r = web(endpoint, site, "/", method="HEAD")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Length"] == str(len(INDEX))
    assert r.headers["Content-Type"] == "text/html"
    assert r.headers["ETag"] == f'"{md5_hex(INDEX)}"'
    r = web(endpoint, site, "/missing.html", method="HEAD")
    assert r.status_code == 404
    assert r.content == b""


def test_write_methods_not_allowed(endpoint, site):
    r = web(endpoint, site, "/page.html", method="PUT")
    assert_html_error(r, 405, "Method Not Allowed", "MethodNotAllowed")
    assert web(endpoint, site, "/page.html").content == PAGE


def test_curl_website_endpoint(endpoint, site):
    host = site_host(endpoint, site)
    out = subprocess.run(["curl", "-s", "-i", "-H", f"Host: {host}", f"{endpoint}/"],
                         capture_output=True, timeout=10, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].split()[1] == "200", lines[0]
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert headers["content-type"] == "text/html"
    assert body == INDEX
    # curl --resolve sends the real host name, as a browser would.
    port = port_of(endpoint)
    name = f"{site}.s3-website.localhost"
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                          "--resolve", f"{name}:{port}:127.0.0.1", f"http://{name}:{port}/docs"],
                         capture_output=True, timeout=10, check=True).stdout.decode()
    assert out == f"302 http://{name}:{port}/docs/"


# --- redirects -------------------------------------------------------------------------

def test_redirect_all_requests(endpoint, s3, bucket):
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "example.com"}})
    r = web(endpoint, bucket, "/some/page.html")
    assert r.status_code == 301
    assert r.headers["Location"] == "http://example.com/some/page.html"
    r = web(endpoint, bucket, "/")
    assert r.status_code == 301
    assert r.headers["Location"] == "http://example.com/"
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "www.example.org", "Protocol": "https"}})
    r = web(endpoint, bucket, "/a.html")
    assert r.status_code == 301
    assert r.headers["Location"] == "https://www.example.org/a.html"
    assert s3.get_bucket_website(Bucket=bucket)["RedirectAllRequestsTo"] == {
        "HostName": "www.example.org", "Protocol": "https"}


def test_routing_rule_key_prefix(endpoint, s3, site):
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "error.html"},
        "RoutingRules": [{"Condition": {"KeyPrefixEquals": "docs/"},
                          "Redirect": {"ReplaceKeyPrefixWith": "documents/"}}],
    })
    cfg = s3.get_bucket_website(Bucket=site)
    assert cfg["RoutingRules"] == [{"Condition": {"KeyPrefixEquals": "docs/"},
                                    "Redirect": {"ReplaceKeyPrefixWith": "documents/"}}]
    host = site_host(endpoint, site)
    r = web(endpoint, site, "/docs/intro.html")
    assert r.status_code == 301
    assert r.headers["Location"] == f"http://{host}/documents/intro.html"
    # Even an existing key under the prefix is redirected.
    r = web(endpoint, site, "/docs/index.html")
    assert r.status_code == 301
    assert r.headers["Location"] == f"http://{host}/documents/index.html"
    # Other keys are untouched.
    assert web(endpoint, site, "/page.html").content == PAGE
    # Through the path form, the rewritten URL stays on the path form.
    r = web_path(endpoint, site, "/docs/intro.html")
    assert r.status_code == 301
    netloc = endpoint.split("://", 1)[1]
    assert r.headers["Location"] == f"http://{netloc}/_nimbus/website/{site}/documents/intro.html"


def test_routing_rule_on_404(endpoint, s3, site):
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"},
        "RoutingRules": [{"Condition": {"HttpErrorCodeReturnedEquals": "404"},
                          "Redirect": {"HostName": "example.com", "ReplaceKeyPrefixWith": "report-404/",
                                       "HttpRedirectCode": "302"}}],
    })
    r = web(endpoint, site, "/gone.html")
    assert r.status_code == 302
    assert r.headers["Location"] == "http://example.com/report-404/gone.html"
    r = web(endpoint, site, "/page.html")
    assert r.status_code == 200 and r.content == PAGE


def test_object_website_redirect_location(endpoint, s3, site):
    s3.put_object(Bucket=site, Key="old.html", Body=b"", WebsiteRedirectLocation="/page.html")
    s3.put_object(Bucket=site, Key="away.html", Body=b"", WebsiteRedirectLocation="https://example.com/x")
    assert s3.head_object(Bucket=site, Key="old.html")["WebsiteRedirectLocation"] == "/page.html"
    r = web(endpoint, site, "/old.html")
    assert r.status_code == 301
    assert r.headers["Location"] == "/page.html"
    r = web(endpoint, site, "/away.html")
    assert r.status_code == 301
    assert r.headers["Location"] == "https://example.com/x"
    r = web(endpoint, site, "/old.html", method="HEAD")
    assert r.status_code == 301
    assert r.headers["Location"] == "/page.html"
    # The REST API ignores the redirect and serves the object.
    assert s3.get_object(Bucket=site, Key="old.html")["Body"].read() == b""


# --- virtual-hosted-style API requests ------------------------------------------------

@pytest.fixture
def vhost_s3(endpoint):
    """boto3 with virtual addressing against http://localhost:PORT. botocore sends to
    BUCKET.localhost:PORT; since that need not resolve here, a before-send hook sends
    the request to 127.0.0.1 and keeps the signed Host header."""
    port = port_of(endpoint)
    client = boto3.client(
        "s3", endpoint_url=f"http://localhost:{port}", region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "virtual"}))
    seen = []

    def reroute(request, **_):
        parts = urllib.parse.urlsplit(request.url)
        seen.append(parts.netloc)
        request.headers["Host"] = parts.netloc
        request.url = urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))

    client.meta.events.register_first("before-send.s3", reroute)
    client.seen_hosts = seen
    return client


def test_virtual_hosted_put_get_list(vhost_s3, s3):
    name = bucket_name("vh")
    vhost_s3.create_bucket(Bucket=name)
    try:
        assert vhost_s3.seen_hosts[-1].startswith(f"{name}.localhost:")
        vhost_s3.put_object(Bucket=name, Key="dir/a.txt", Body=b"virtual", ContentType="text/plain")
        assert vhost_s3.seen_hosts[-1].startswith(f"{name}.localhost:")
        got = vhost_s3.get_object(Bucket=name, Key="dir/a.txt")
        assert got["Body"].read() == b"virtual"
        assert got["ContentType"] == "text/plain"
        keys = [o["Key"] for o in vhost_s3.list_objects_v2(Bucket=name)["Contents"]]
        assert keys == ["dir/a.txt"]
        # The same bucket, seen path-style.
        assert s3.get_object(Bucket=name, Key="dir/a.txt")["Body"].read() == b"virtual"
        with pytest.raises(ClientError) as e:
            vhost_s3.get_object(Bucket=name, Key="missing")
        assert err(e) == ("NoSuchKey", 404)
        vhost_s3.delete_object(Bucket=name, Key="dir/a.txt")
        assert vhost_s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    finally:
        empty_and_delete(s3, name)


@pytest.mark.parametrize("form", ["{b}.s3.localhost", "{b}.s3.us-east-1.localhost", "{b}.localhost"])
def test_virtual_hosted_anonymous(endpoint, s3, bucket, form):
    make_public(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k.txt", Body=b"hosted")
    host = form.format(b=bucket) + f":{port_of(endpoint)}"
    r = requests.get(f"{endpoint}/k.txt", headers={"Host": host})
    assert r.status_code == 200, r.text
    assert r.content == b"hosted"
    r = requests.get(f"{endpoint}/?list-type=2", headers={"Host": host})
    assert r.status_code == 200, r.text
    assert f"<Name>{bucket}</Name>" in r.text and "<Key>k.txt</Key>" in r.text
    r = requests.get(f"{endpoint}/missing", headers={"Host": host})
    assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text
