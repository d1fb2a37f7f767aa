"""What a user meets first (issue 9): the request log, honest answers for services and
operations nimbus does not serve, anonymous callers, the first page, and an
`--auth enforce` that holds against a client that tampers with a signed request."""
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import REGION, Server, aws_cli, make_client, nimbus_bin

ROOT_KEY, ROOT_SECRET = "AKIAROOTEXAMPLE00009", "root-secret-9"


def http(method, url, body=b"", headers=None):
    req = urllib.request.Request(url, data=body if method not in ("GET", "HEAD") else None,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def signed(method, url, service, body=b"", headers=None, key=ROOT_KEY, secret=ROOT_SECRET, token=None):
    """A request signed by botocore's own SigV4 signer; returns (url, headers, body)."""
    creds = botocore.credentials.Credentials(key, secret, token)
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers or {})
    signer = botocore.auth.S3SigV4Auth if service == "s3" else botocore.auth.SigV4Auth
    signer(creds, service, REGION).add_auth(req)
    return req.url, dict(req.headers.items()), body


@pytest.fixture(scope="module")
def logged():
    s = Server().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def enforced():
    s = Server("--auth", "enforce", "--root-access-key-id", ROOT_KEY,
               "--root-secret-access-key", ROOT_SECRET).start()
    yield s
    s.stop()


def wait_for_log(server, needle, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in server.log().splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in the log:\n{server.log()[-3000:]}")


# 1. The request log

def test_each_request_is_one_log_line(logged):
    sqs = make_client(logged.endpoint, "sqs", access_key="123456789012")
    sqs.create_queue(QueueName="logged")
    line = wait_for_log(logged, "sqs.CreateQueue")
    assert " 200 " in line and "acct=123456789012" in line and line.rstrip().endswith(REGION)
    assert "ms" in line and " INFO " in line
    with pytest.raises(botocore.exceptions.ClientError):
        sqs.get_queue_url(QueueName="missing")
    line = wait_for_log(logged, "sqs.GetQueueUrl")
    assert " 400 " in line and "QueueDoesNotExist" in line
    # No colour codes when stderr is not a terminal; health polls are not logged.
    assert "\x1b[" not in logged.log()
    assert "health" not in logged.log()


def test_json_log_lines():
    s = Server("--log-format", "json").start()
    try:
        s3 = make_client(s.endpoint, "s3")
        s3.create_bucket(Bucket="json-logged")
        with pytest.raises(botocore.exceptions.ClientError):
            s3.head_object(Bucket="json-logged", Key="none")
        records = []
        deadline = time.time() + 5
        while time.time() < deadline and len(records) < 2:
            records = [json.loads(l) for l in s.log().splitlines() if l.startswith("{")]
            records = [r for r in records if r.get("target") == "request"]
            time.sleep(0.05)
        ok = next(r for r in records if r["operation"] == "CreateBucket")
        assert (ok["service"], ok["status"], ok["error"], ok["account"], ok["region"]) == \
            ("s3", 200, "", "000000000000", REGION)
        assert isinstance(ok["duration_ms"], float) and ok["level"] == "INFO" and "timestamp" in ok
        missing = next(r for r in records if r["operation"] == "HeadObject")
        assert missing["status"] == 404 and missing["error"] == "NoSuchKey"
    finally:
        s.stop()


# 2. Honest answers for what nimbus does not serve

@pytest.mark.parametrize("args,service,service_id", [
    (["dynamodb", "list-tables"], "dynamodb", "DynamoDB"),            # JSON 1.0
    (["kms", "list-keys"], "kms", "KMS"),                             # JSON 1.1
    (["lambda", "list-functions"], "lambda", "Lambda"),               # REST-JSON
    (["route53", "list-hosted-zones"], "route53", "Route 53"),        # REST-XML
    (["sns", "list-topics"], "sns", "SNS"),                           # query
    (["elb", "describe-load-balancers"], "elb", "Elastic Load Balancing"),
    (["autoscaling", "describe-auto-scaling-groups"], "autoscaling", "Auto Scaling"),
    (["logs", "describe-log-groups"], "logs", "CloudWatch Logs"),
])
def test_unserved_service_is_named(endpoint, args, service, service_id):
    p = aws_cli(endpoint, *args, check=False)
    assert p.returncode != 0
    assert f"(NotImplemented) when calling" in p.stderr, p.stderr
    assert f"nimbus does not implement the service '{service}' ({service_id}) yet." in p.stderr


def test_unserved_service_status_and_shape(endpoint):
    ddb = make_client(endpoint, "dynamodb")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ddb.list_tables()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    # A JSON service answers JSON, never S3's or STS's XML.
    url, headers, body = signed("POST", endpoint + "/", "dynamodb", b"{}", {
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0"}, key="test", secret="test")
    status, h, raw = http("POST", url, body, headers)
    assert status == 501 and json.loads(raw)["__type"].endswith("NotImplemented")


def test_unimplemented_operation_of_served_service(endpoint, aws):
    p = aws_cli(endpoint, "ec2", "create-vpc", "--cidr-block", "10.0.0.0/16", check=False)
    assert "nimbus does not implement the operation 'CreateVpc' of the service 'ec2' (EC2) yet." in p.stderr
    s3 = make_client(endpoint, "s3")
    s3.create_bucket(Bucket="analytics")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_analytics_configuration(Bucket="analytics", Id="x")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "'GetBucketAnalyticsConfiguration' of the service 's3'" in e.value.response["Error"]["Message"]


def test_health_lists_served_services(endpoint):
    status, _, body = http("GET", endpoint + "/_nimbus/health")
    services = json.loads(body)["services"]
    assert {"s3", "sqs", "sts", "iam", "ec2"} <= set(services)
    assert "dynamodb" not in services


# 3. Anonymous means anonymous

def test_unsigned_requests_are_anonymous(endpoint):
    status, _, body = http("PUT", endpoint + "/anon-made")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    s3 = make_client(endpoint, "s3")
    assert "anon-made" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    status, _, body = http("GET", endpoint + "/")
    assert status == 403 and b"AccessDenied" in body and b"ListAllMyBucketsResult" not in body
    status, _, body = http("POST", endpoint + "/", b"Action=GetCallerIdentity&Version=2011-06-15",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and b"MissingAuthenticationToken" in body
    status, _, body = http("POST", endpoint + "/", b"Action=CreateQueue&QueueName=anon&Version=2012-11-05",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and b"MissingAuthenticationToken" in body
    assert "QueueUrls" not in make_client(endpoint, "sqs").list_queues(QueueNamePrefix="anon")


def test_anonymous_reads_what_a_policy_grants_even_under_enforce(enforced):
    s3 = make_client(enforced.endpoint, "s3", access_key=ROOT_KEY, secret_key=ROOT_SECRET)
    s3.create_bucket(Bucket="public-site")
    s3.delete_public_access_block(Bucket="public-site")
    s3.put_bucket_policy(Bucket="public-site", Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::public-site/*"}]}))
    s3.put_object(Bucket="public-site", Key="index.html", Body=b"hello")
    assert http("GET", enforced.endpoint + "/public-site/index.html")[2] == b"hello"
    status, _, _ = http("PUT", enforced.endpoint + "/public-site/x", b"no")
    assert status == 403


# 7. The first page

def test_first_page_in_a_browser(endpoint):
    status, headers, body = http("GET", endpoint + "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "nimbus" in page and "/_nimbus/health" in page and "<td>sqs</td>" in page
    status, headers, body = http("GET", endpoint + "/_nimbus/docs")
    assert status == 200 and b"nimbus serve" in body
    # An SDK's signed ListBuckets still gets its XML.
    assert "Buckets" in make_client(endpoint, "s3").list_buckets()


# 8. --auth enforce against a tampering client

def test_swapped_body_is_refused(enforced):
    url, headers, body = signed("POST", enforced.endpoint + "/", "sts",
                                b"Action=GetCallerIdentity&Version=2011-06-15",
                                {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    status, _, answer = http("POST", url, body, headers)
    assert status == 200 and b"GetCallerIdentityResult" in answer
    # The same signature, a different body; also with a header claiming the old body's hash.
    swapped = b"Action=GetSessionToken&Version=2011-06-15"
    status, _, answer = http("POST", url, swapped, headers)
    assert status == 403 and b"SignatureDoesNotMatch" in answer and b"Credentials" not in answer
    import hashlib
    claimed = dict(headers, **{"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    status, _, answer = http("POST", url, swapped, claimed)
    assert status in (400, 403) and b"Credentials" not in answer


def test_unsigned_amz_headers_are_refused(enforced):
    s3 = make_client(enforced.endpoint, "s3", access_key=ROOT_KEY, secret_key=ROOT_SECRET)
    s3.create_bucket(Bucket="private-src")
    s3.put_object(Bucket="private-src", Key="secret.txt", Body=b"top secret")
    s3.create_bucket(Bucket="dest")
    url, headers, body = signed("PUT", enforced.endpoint + "/dest/copy.txt", "s3")
    headers["x-amz-copy-source"] = "/private-src/secret.txt"
    status, _, answer = http("PUT", url, body, headers)
    assert status == 403 and b"There were headers present in the request which were not signed" in answer
    assert b"<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>" in answer
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="dest", Key="copy.txt")


def test_host_must_be_signed(enforced):
    url, headers, body = signed("POST", enforced.endpoint + "/", "sqs",
                                b"Action=ListQueues&Version=2012-11-05",
                                {"Content-Type": "application/x-www-form-urlencoded"})
    auth = headers["Authorization"]
    assert "host;" in auth or "SignedHeaders=host" in auth
    # Rebuild the header without host among the signed headers (the signature cannot match anyway;
    # the refusal must name the cause).
    headers["Authorization"] = auth.replace("host;", "")
    status, _, answer = http("POST", url, body, headers)
    assert status == 400 and b"'Host' or ':authority' must be a 'SignedHeader'" in answer


def test_session_token_on_long_term_key_is_refused(enforced):
    sts = make_client(enforced.endpoint, "sts", access_key=ROOT_KEY, secret_key=ROOT_SECRET, token="made-up")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    s3 = make_client(enforced.endpoint, "s3", access_key=ROOT_KEY, secret_key=ROOT_SECRET, token="made-up")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidToken"


def test_internal_endpoints_need_root_under_enforce(enforced):
    url = enforced.endpoint + "/_nimbus/s3/lifecycle?at=4102444800"
    status, _, body = http("POST", url)
    assert status == 403 and b"ran" not in body
    other_key = signed("POST", url, "nimbus", key="AKIAOTHER0000000001", secret="x")
    assert http("POST", *other_key[:1], other_key[2], other_key[1])[0] == 403
    u, h, b = signed("POST", url, "nimbus", key=ROOT_KEY, secret="wrong")
    assert http("POST", u, b, h)[0] == 403
    u, h, b = signed("POST", url, "nimbus")
    status, _, body = http("POST", u, b, h)
    assert status == 200 and json.loads(body) == {"ran": True}
    # Reset, at each of its URLs and through `nimbus reset`: refused unsigned, done signed.
    s3 = make_client(enforced.endpoint, "s3", access_key=ROOT_KEY, secret_key=ROOT_SECRET)
    for path in ("/_nimbus/reset", "/_localstack/state/reset", "/moto-api/reset"):
        s3.create_bucket(Bucket="kept-until-reset")
        status, _, body = http("POST", enforced.endpoint + path)
        assert status == 403 and b'"ok"' not in body
        assert "kept-until-reset" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        u, h, b = signed("POST", enforced.endpoint + path, "nimbus")
        status, _, body = http("POST", u, b, h)
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert s3.list_buckets()["Buckets"] == []
    s3.create_bucket(Bucket="kept-until-reset")
    cli = [nimbus_bin(), "reset", "--endpoint", enforced.endpoint]
    p = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "403" in p.stderr  # the default root key is not this server's
    p = subprocess.run(cli + ["--root-access-key-id", ROOT_KEY, "--root-secret-access-key", ROOT_SECRET],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert s3.list_buckets()["Buckets"] == []
    # Health stays open.
    assert http("GET", enforced.endpoint + "/_nimbus/health")[0] == 200


def raw_exchange(port, data, shutdown=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


def test_truncated_body_is_incomplete_not_too_large(logged):
    head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\nAction=ListQueues")
    answer = raw_exchange(logged.port, head)
    assert answer.startswith(b"HTTP/1.1 400") and b"IncompleteBody" in answer, answer[:300]
    chunked = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               b"Transfer-Encoding: chunked\r\n\r\nzz\r\nAction\r\n0\r\n\r\n")
    answer = raw_exchange(logged.port, chunked)
    assert b"413" not in answer.split(b"\r\n", 1)[0]


def test_slow_headers_are_cut_off():
    s = Server("--header-timeout", "1").start()
    try:
        started = time.time()
        # Never finishes its headers: closed by the server, with nothing answered.
        answer = raw_exchange(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n", shutdown=False, timeout=10)
        assert time.time() - started < 8
        started = time.time()
        answer = raw_exchange(s.port, b"", shutdown=False, timeout=10)
        assert answer == b"" and time.time() - started < 8
        # The server still serves.
        assert http("GET", s.endpoint + "/_nimbus/health")[0] == 200
    finally:
        s.stop()


def test_readme_quick_start_works_as_pasted(endpoint, tmp_path):
    """The README's "Using it" block, pasted into a shell (only the endpoint differs)."""
    import os
    import re
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    block = re.search(r"## Using it\n\n```sh\n(.*?)```", readme, re.S).group(1)
    script = block.replace("http://localhost:4566", endpoint)
    env = dict(os.environ, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "upload: ./cat.jpg to s3://photos/cat.jpg" in p.stdout
    got = make_client(endpoint, "s3").get_object(Bucket="photos", Key="cat.jpg")["Body"].read()
    assert got == b"meow\n"


def test_background_work_is_logged():
    """Instance state changes and a finished boot (process driver: runs anywhere)."""
    s = Server("--instance-driver", "process").start()
    try:
        ec2 = make_client(s.endpoint, "ec2")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                UserData="#!/bin/bash\necho booted\n")["Instances"][0]["InstanceId"]
        wait_for_log(s, f"instance {iid} pending -> running", timeout=20)
        wait_for_log(s, f"instance {iid} finished booting", timeout=30)
        ec2.stop_instances(InstanceIds=[iid])
        wait_for_log(s, f"instance {iid} stopping -> stopped", timeout=30)
        ec2.terminate_instances(InstanceIds=[iid])
        wait_for_log(s, f"instance {iid} terminated", timeout=30)
        assert "ec2.RunInstances 200" in s.log()
    finally:
        s.stop()
