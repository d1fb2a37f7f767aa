"""The core through real clients: start-up, health, one port for every protocol,
HTTP/1.1 keep-alive and HTTP/2 cleartext, accounts from access keys, STS, and
signatures (open and enforce modes, presigned expiry, SigV2)."""
import datetime
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests

from conftest import Server, SigV4, make_client, nimbus_bin


def test_version_flag():
    out = subprocess.run([nimbus_bin(), "--version"], capture_output=True, text=True, check=True)
    assert re.match(r"nimbus \d+\.\d+\.\d+", out.stdout)


def test_startup_line_health_and_status(server):
    log = server.log()
    assert re.search(r"listening on http://127\.0\.0\.1:\d+ .*data in .*\(ephemeral\)\. Ready\.", log), log
    for path in ("/_nimbus/health", "/_localstack/health"):
        r = requests.get(server.endpoint + path)
        assert r.status_code == 200
        doc = r.json()
        assert doc["services"]["sqs"] == "running"
        assert doc["services"]["sts"] == "running"
        assert re.match(r"\d+\.\d+\.\d+", doc["version"])
    out = subprocess.run([nimbus_bin(), "status", "--endpoint", server.endpoint],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["services"]["sqs"] == "running"


def test_status_without_server_fails():
    out = subprocess.run([nimbus_bin(), "status", "--endpoint", "http://127.0.0.1:9"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "no nimbus answers" in out.stderr


def test_ctrl_c_shuts_down_and_ephemeral_leaves_nothing():
    s = Server().start()
    data_dir = requests.get(s.endpoint + "/_nimbus/health").json()["data_dir"]
    assert os.path.isdir(data_dir)
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=10) == 0
    assert not os.path.exists(data_dir)


def test_durable_data_dir_survives_restart(tmp_path):
    s = Server(data_dir=str(tmp_path)).start()
    try:
        sqs = make_client(s.endpoint, "sqs")
        url = sqs.create_queue(QueueName="survivor")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="kept")
    finally:
        s.stop()
    assert (tmp_path / "state.redb").exists()
    s.start()
    try:
        sqs = make_client(s.endpoint, "sqs")
        url = sqs.get_queue_url(QueueName="survivor")["QueueUrl"]
        msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
        assert [m["Body"] for m in msgs] == ["kept"]
    finally:
        s.stop()


def test_keep_alive_reuses_one_connection(endpoint):
    with requests.Session() as session:
        for _ in range(5):
            r = session.get(endpoint + "/_nimbus/health")
            assert r.status_code == 200
            assert r.headers.get("connection", "").lower() != "close"


def test_http2_cleartext(endpoint):
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
         endpoint + "/_nimbus/health"], capture_output=True, text=True, check=True)
    assert out.stdout == "2 200"
    body = json.dumps({"QueueName": "h2-queue"})
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "--aws-sigv4", "aws:amz:us-east-1:sqs", "--user", "test:test",
         "-H", "X-Amz-Target: AmazonSQS.CreateQueue",
         "-H", "Content-Type: application/x-amz-json-1.0", "--data", body, endpoint + "/"],
        capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["QueueUrl"].endswith("/000000000000/h2-queue")


def signed(endpoint, service, method="POST", path="/", params=None, body=None, headers=None,
           key="test", secret="test", token=None, region="us-east-1", when=None):
    """A request signed with botocore's own SigV4 signer."""
    url = endpoint + path
    data = body if body is not None else (urllib.parse.urlencode(params) if params else None)
    h = {"Content-Type": "application/x-www-form-urlencoded"} if params else {}
    h.update(headers or {})
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=data, headers=h)
    creds = botocore.credentials.Credentials(key, secret, token)
    signer = botocore.auth.SigV4Auth(creds, service, region)
    if when:
        real = botocore.auth.datetime.datetime

        class Frozen(real):
            @classmethod
            def utcnow(cls):
                return when

            @classmethod
            def now(cls, tz=None):
                return when.replace(tzinfo=tz) if tz else when
        botocore.auth.datetime.datetime = Frozen
        try:
            signer.add_auth(req)
        finally:
            botocore.auth.datetime.datetime = real
    else:
        signer.add_auth(req)
    prepared = req.prepare()
    return requests.request(prepared.method, prepared.url, headers=dict(prepared.headers), data=prepared.body)


def test_service_detection_every_way(endpoint):
    # AWS JSON 1.0 by X-Amz-Target (boto3)
    sqs = make_client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="detect")["QueueUrl"]
    # Query protocol, told apart by the SigV4 credential scope
    r = signed(endpoint, "sqs", params={"Action": "GetQueueUrl", "QueueName": "detect", "Version": "2012-11-05"})
    assert r.status_code == 200, r.text
    assert "<QueueUrl>" in r.text and r.text.count("detect") >= 1
    r = signed(endpoint, "sts", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    assert r.status_code == 200 and "<GetCallerIdentityResult>" in r.text
    # Unsigned query: the action names its service (which refuses an anonymous caller in
    # its own error form); a signed GET to the queue URL is addressed by the path.
    r = requests.get(url, params={"Action": "GetQueueAttributes", "AttributeName.1": "QueueArn"})
    assert r.status_code == 403 and 'xmlns="http://queue.amazonaws.com/doc/2012-11-05/"' in r.text
    assert "MissingAuthenticationToken" in r.text
    r = requests.get(url, params={"Action": "GetQueueAttributes", "AttributeName.1": "QueueArn"},
                     auth=SigV4("sqs"))
    assert r.status_code == 200, r.text
    assert "arn:aws:sqs:us-east-1:000000000000:detect" in r.text
    # Host name, for callers without a SigV4 scope
    host = urllib.parse.urlparse(endpoint).netloc
    r = requests.post(endpoint + "/", headers={"Host": "sqs." + host},
                      data={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    assert r.status_code == 400 and 'xmlns="http://queue.amazonaws.com/doc/2012-11-05/"' in r.text
    # Presigned query parameters
    sts = make_client(endpoint, "sts")
    presigned = sts.generate_presigned_url("get_caller_identity", HttpMethod="GET", ExpiresIn=60)
    r = requests.get(presigned)
    assert r.status_code == 200 and "<Arn>arn:aws:iam::000000000000:root</Arn>" in r.text


def test_unknown_action_and_service(endpoint):
    r = requests.post(endpoint + "/", data={"Action": "NoSuchAction"})
    assert r.status_code == 400
    assert "<Code>InvalidAction</Code>" in r.text
    r = requests.post(endpoint + "/", headers={"X-Amz-Target": "NoSuchService_2020.Op",
                                               "Content-Type": "application/x-amz-json-1.1"}, data="{}")
    assert r.status_code == 400


def test_access_key_names_account(endpoint, aws):
    assert aws("sts", "get-caller-identity")["Account"] == "000000000000"
    ident = aws("sts", "get-caller-identity", env={"AWS_ACCESS_KEY_ID": "123456789012"})
    assert ident["Account"] == "123456789012"
    assert ident["Arn"] == "arn:aws:iam::123456789012:root"
    # queues are partitioned by account
    a = make_client(endpoint, "sqs", access_key="111111111111")
    b = make_client(endpoint, "sqs", access_key="222222222222")
    url = a.create_queue(QueueName="mine")["QueueUrl"]
    assert "/111111111111/mine" in url
    with pytest.raises(botocore.exceptions.ClientError) as e:
        b.get_queue_url(QueueName="mine")
    assert e.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"


def test_sts_temporary_credentials_work(endpoint, aws):
    sts = make_client(endpoint, "sts")
    out = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/worker", RoleSessionName="job-1")
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    assert c["Expiration"] > datetime.datetime.now(datetime.timezone.utc)
    assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/worker/job-1"
    env = {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
           "AWS_SESSION_TOKEN": c["SessionToken"]}
    ident = aws("sts", "get-caller-identity", env=env)
    assert ident["Arn"] == "arn:aws:sts::123456789012:assumed-role/worker/job-1"
    assert ident["Account"] == "123456789012"
    assert ident["UserId"].endswith(":job-1") and ident["UserId"].startswith("AROA")
    # the assumed role's account owns what it creates
    sqs = make_client(endpoint, "sqs", access_key=c["AccessKeyId"], secret_key=c["SecretAccessKey"],
                      token=c["SessionToken"])
    assert "/123456789012/role-queue" in sqs.create_queue(QueueName="role-queue")["QueueUrl"]

    st = sts.get_session_token(DurationSeconds=900)["Credentials"]
    ident = make_client(endpoint, "sts", access_key=st["AccessKeyId"], secret_key=st["SecretAccessKey"],
                        token=st["SessionToken"]).get_caller_identity()
    assert ident["Arn"] == "arn:aws:iam::000000000000:root"


def test_sts_validation_errors(endpoint):
    sts = make_client(endpoint, "sts", parameter_validation=False)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/x", RoleSessionName="ok", DurationSeconds=60)
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_presigned_expiry_enforced_in_open_mode(endpoint):
    sts = make_client(endpoint, "sts")
    url = sts.generate_presigned_url("get_caller_identity", HttpMethod="GET", ExpiresIn=1)
    assert requests.get(url).status_code == 200
    time.sleep(2.1)
    r = requests.get(url)
    # AWS's common error for an expired presigned request outside S3
    assert r.status_code == 400, r.text
    assert "<Code>RequestExpired</Code>" in r.text


@pytest.fixture(scope="module")
def enforced():
    s = Server("--auth", "enforce", "--root-access-key-id", "AKIAROOTEXAMPLE00001",
               "--root-secret-access-key", "root-secret").start()
    yield s
    s.stop()


def test_enforce_accepts_right_secret(enforced):
    sqs = make_client(enforced.endpoint, "sqs", access_key="AKIAROOTEXAMPLE00001", secret_key="root-secret")
    assert sqs.create_queue(QueueName="enforced")["QueueUrl"].endswith("/enforced")
    sts = make_client(enforced.endpoint, "sts", access_key="AKIAROOTEXAMPLE00001", secret_key="root-secret")
    assert sts.get_caller_identity()["Account"] == "000000000000"


def test_enforce_refuses_wrong_secret(enforced, aws):
    for service, call in (("sqs", lambda c: c.list_queues()), ("sts", lambda c: c.get_caller_identity())):
        c = make_client(enforced.endpoint, service, access_key="AKIAROOTEXAMPLE00001", secret_key="wrong")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(c)
        assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch", e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    p = aws_cli_enforced(enforced, "wrong")
    assert p.returncode != 0 and "SignatureDoesNotMatch" in p.stderr


def test_enforce_covers_a_compressed_body(enforced):
    """A gzip-compressed call (SDKs compress PutMetricData) is signed as sent:
    the same call with its inflated content changed and compressed again is
    refused, and changes nothing."""
    import gzip

    def cw(tamper):
        c = make_client(enforced.endpoint, "cloudwatch", access_key="AKIAROOTEXAMPLE00001",
                        secret_key="root-secret", request_min_compression_size_bytes=1)
        if tamper:
            def swap(request, **_):
                request.body = gzip.compress(gzip.decompress(request.body).replace(b"signed", b"forged"))
            c.meta.events.register("before-send.cloudwatch.PutMetricData", swap)
        return c

    names = lambda: sorted(m["MetricName"] for m in cw(False).list_metrics(Namespace="Gz")["Metrics"])
    cw(False).put_metric_data(Namespace="Gz", MetricData=[{"MetricName": "signed", "Value": 1.0}])
    assert names() == ["signed"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cw(True).put_metric_data(Namespace="Gz", MetricData=[{"MetricName": "signed", "Value": 2.0}])
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert names() == ["signed"]


def aws_cli_enforced(server, secret):
    from conftest import aws_cli
    return aws_cli(server.endpoint, "sqs", "list-queues", check=False,
                   env={"AWS_ACCESS_KEY_ID": "AKIAROOTEXAMPLE00001", "AWS_SECRET_ACCESS_KEY": secret})


def test_enforce_refuses_unknown_key_and_anonymous(enforced):
    c = make_client(enforced.endpoint, "sts", access_key="AKIANOBODY0000000000", secret_key="x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    r = requests.post(enforced.endpoint + "/", data={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    assert r.status_code == 403
    assert "MissingAuthenticationToken" in r.text


def test_enforce_verifies_sts_credentials(enforced):
    sts = make_client(enforced.endpoint, "sts", access_key="AKIAROOTEXAMPLE00001", secret_key="root-secret")
    c = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/r", RoleSessionName="s1")["Credentials"]
    good = make_client(enforced.endpoint, "sts", access_key=c["AccessKeyId"], secret_key=c["SecretAccessKey"],
                       token=c["SessionToken"])
    assert good.get_caller_identity()["Account"] == "123456789012"
    for secret, token in ((c["SecretAccessKey"] + "x", c["SessionToken"]), (c["SecretAccessKey"], "bogus")):
        bad = make_client(enforced.endpoint, "sts", access_key=c["AccessKeyId"], secret_key=secret, token=token)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            bad.get_caller_identity()
        assert e.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "InvalidClientTokenId")


def test_enforce_refuses_skewed_clock(enforced):
    when = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    r = signed(enforced.endpoint, "sts", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
               key="AKIAROOTEXAMPLE00001", secret="root-secret", when=when)
    assert r.status_code in (400, 403), r.text
    assert re.search(r"<Code>(RequestExpired|SignatureDoesNotMatch|RequestTimeTooSkewed)</Code>", r.text), r.text
    r = signed(enforced.endpoint, "sts", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
               key="AKIAROOTEXAMPLE00001", secret="root-secret")
    assert r.status_code == 200, r.text


def test_enforce_sigv2_query(enforced):
    params = {"Action": "ListQueues", "Version": "2012-11-05"}
    for secret, status in (("root-secret", 200), ("wrong", 403)):
        req = botocore.awsrequest.AWSRequest(method="POST", url=enforced.endpoint + "/", data=dict(params))
        botocore.auth.SigV2Auth(botocore.credentials.Credentials("AKIAROOTEXAMPLE00001", secret)).add_auth(req)
        r = requests.post(enforced.endpoint + "/", data=req.data)
        assert r.status_code == status, r.text


def test_enforce_presigned(enforced):
    sts = make_client(enforced.endpoint, "sts", access_key="AKIAROOTEXAMPLE00001", secret_key="root-secret")
    assert requests.get(sts.generate_presigned_url("get_caller_identity", HttpMethod="GET", ExpiresIn=60)).status_code == 200
    bad = make_client(enforced.endpoint, "sts", access_key="AKIAROOTEXAMPLE00001", secret_key="nope")
    r = requests.get(bad.generate_presigned_url("get_caller_identity", HttpMethod="GET", ExpiresIn=60))
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text


def cbor_call(endpoint, service, operation, params):
    """One call in Smithy RPC v2 CBOR, serialized, signed and parsed by botocore itself."""
    import botocore.parsers
    import botocore.serialize
    import botocore.session
    model = botocore.session.get_session().get_service_model(service)
    op = model.operation_model(operation)
    req = botocore.serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, op)
    aws_req = botocore.awsrequest.AWSRequest(method=req["method"], url=endpoint + req["url_path"],
                                             data=req["body"], headers=req["headers"])
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("test", "test"), model.signing_name,
                            "us-east-1").add_auth(aws_req)
    prepared = aws_req.prepare()
    r = requests.post(prepared.url, headers=dict(prepared.headers), data=prepared.body)
    parsed = botocore.parsers.create_parser("smithy-rpc-v2-cbor").parse(
        {"status_code": r.status_code, "headers": r.headers, "body": r.content}, op.output_shape)
    return r, parsed


def test_sqs_over_cbor(endpoint):
    r, out = cbor_call(endpoint, "sqs", "CreateQueue", {"QueueName": "cbor-q"})
    assert r.status_code == 200 and r.headers["smithy-protocol"] == "rpc-v2-cbor"
    url = out["QueueUrl"]
    assert url.endswith("/000000000000/cbor-q")
    r, out = cbor_call(endpoint, "sqs", "SendMessage", {"QueueUrl": url, "MessageBody": "over cbor"})
    assert out["MD5OfMessageBody"] == "b97f3a54c7c25767b4453151ec9268a5"
    r, out = cbor_call(endpoint, "sqs", "ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 1})
    assert [m["Body"] for m in out["Messages"]] == ["over cbor"]
    r, out = cbor_call(endpoint, "sqs", "GetQueueUrl", {"QueueName": "nope-cbor"})
    assert r.status_code == 400
    assert out["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
