"""The wire codec against botocore, with no server: the main proof that nimbus
speaks each protocol exactly as the Python SDK does.

For every operation of every embedded model (models/*.json) and every protocol
that model lists, seeded random inputs (every member kind, nested lists, maps
and structures, unicode, timestamps, blobs) are serialized by botocore's own
serializer, decoded by `nimbus wire decode` and compared with the parameters.
Random outputs go the other way through `nimbus wire encode` and botocore's
parser, and errors (modelled ones such as SQS's QueueDoesNotExist, and plain
codes) are checked for the Code, Message, status and request id botocore sees.

All cases of a direction run through one `nimbus wire` process (JSON lines).
The command is `$NIMBUS_WIRE_CMD` when set (e.g. the `wire` example of the
nimbus-wire crate), else `<nimbus binary> wire` as in conftest.
"""
import base64
import calendar
import datetime
import json
import math
import os
import random
import shlex
import subprocess
import types
import urllib.parse

import botocore.awsrequest
import botocore.model
import botocore.handlers
import botocore.parsers
import botocore.serialize
import botocore.session
import pytest

from conftest import ROOT, nimbus_bin

try:
    from urllib3 import HTTPHeaderDict
except ImportError:  # urllib3 1.x
    from urllib3._collections import HTTPHeaderDict

MODELS_DIR = os.path.join(ROOT, "models")
VARIANTS = int(os.environ.get("WIRE_VARIANTS", "12"))  # random cases per operation and protocol
SEED = os.environ.get("WIRE_SEED", "nimbus")  # change to explore other random cases
REQUEST_ID = "5f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0"
REST = ("rest-xml", "rest-json")
UTC = datetime.timezone.utc


def load_models():
    models = {}
    for fname in sorted(os.listdir(MODELS_DIR)):
        if fname.endswith(".json") and fname != "catalog.json":  # the catalogue is not a model
            name = fname[:-5]
            with open(os.path.join(MODELS_DIR, fname)) as f:
                raw = json.load(f)
            models[name] = (raw, botocore.model.ServiceModel(raw, service_name=name))
    return models


MODELS = load_models()


def protocols_of(raw):
    md = raw["metadata"]
    return md.get("protocols") or [md["protocol"]]


CASES = [(name, proto) for name, (raw, _) in MODELS.items() for proto in protocols_of(raw)]
CASE_IDS = [f"{n}-{p}" for n, p in CASES]


def wire_cmd():
    if os.environ.get("NIMBUS_WIRE_CMD"):
        return shlex.split(os.environ["NIMBUS_WIRE_CMD"])
    return [nimbus_bin(), "wire"]


def run_wire(mode, requests):
    """Sends every request line through one `nimbus wire <mode>` process."""
    stdin = "".join(json.dumps(r) + "\n" for r in requests)
    proc = subprocess.run(
        wire_cmd() + [mode], input=stdin.encode(), capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == len(requests), proc.stderr.decode(errors="replace")
    return [json.loads(line) for line in lines]


# ---------------------------------------------------------------- generation

TEXT_POOL = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " -_.~!*'()&=+%/?:@,;<>\"#[]{}|\\^`$"
    "\u00e9\u00fc\u00f1\u00df\u4e2d\u6587\u65e5\u672c\u0416\u05d0\U0001F600\U0001F680\n\t"
)
TOKEN_POOL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


class Generator:
    """Random values for botocore shapes, shaped so that every protocol can carry them.

    Query and EC2 send nothing for an empty map or structure (and EC2 nothing for an
    empty list), and XML has no way to tell an empty flattened list from an absent one,
    so maps and structures always get at least one entry/member and such lists at least
    one item. Everything else is fair game.
    """

    def __init__(self, seed, protocol, direction):
        self.rng = random.Random(seed)
        self.protocol = protocol
        self.direction = direction  # "input" or "output"

    def value(self, shape, depth=0, location=None):
        kind = shape.type_name
        handler = getattr(self, "gen_" + kind)
        return handler(shape, depth, location)

    def skip_member(self, shape):
        """Streams (passed through by the edge, never decoded), the status code and host
        labels are not the codec's to carry."""
        ser = shape.serialization
        return bool(
            ser.get("streaming") or ser.get("eventstream") or ser.get("hostLabel")
            or ser.get("location") == "statusCode"
        )

    def gen_structure(self, shape, depth, location):
        members = {n: s for n, s in shape.members.items() if not self.skip_member(s)}
        if not members:
            return {}
        if shape.is_tagged_union:
            name = self.rng.choice(sorted(members))
            return {name: self.value(members[name], depth + 1, members[name].serialization.get("location"))}
        required = set(shape.required_members)
        chosen = {}
        keep = 0.75 if depth < 2 else 0.45
        for name, mshape in members.items():
            deep = mshape.type_name in ("structure", "list", "map")
            if name in required or (self.rng.random() < keep and not (deep and depth >= 4)):
                chosen[name] = mshape
        if not chosen:
            scalars = [n for n, s in members.items() if s.type_name not in ("structure", "list", "map")]
            name = self.rng.choice(scalars or sorted(members))
            chosen[name] = members[name]
        return {
            n: self.value(s, depth + 1, s.serialization.get("location")) for n, s in chosen.items()
        }

    def list_len(self, shape, location):
        flattened = shape.serialization.get("flattened")
        low = 1 if (flattened or self.protocol == "ec2" or location in ("header", "headers")) else 0
        if location == "querystring":
            low = 1  # an empty query list is not sent at all
        return self.rng.randint(low, 3)

    def gen_list(self, shape, depth, location):
        n = self.list_len(shape, location)
        return [self.value(shape.member, depth + 1, location) for _ in range(n)]

    def gen_map(self, shape, depth, location):
        out = {}
        for _ in range(self.rng.randint(1, 3)):
            key = self.gen_string(shape.key, depth + 1, "map-key" if location != "headers" else "header-key")
            out[key] = self.value(shape.value, depth + 1, location)
        return out

    def gen_string(self, shape, depth, location):
        enum = shape.enum
        if enum:
            return self.rng.choice(enum)
        lo = int(shape.metadata.get("min", 0) or 0)
        hi = int(shape.metadata.get("max", 24) or 24)
        hi = max(lo, min(hi, 24))
        if location in ("uri", "map-key", "header-key") and lo < 1:
            lo = 1
        n = self.rng.randint(lo, max(lo, hi))
        if location in ("header", "headers", "header-key"):
            text = "".join(self.rng.choice(TOKEN_POOL) for _ in range(max(n, 1)))
            return text.lower() if location == "header-key" else text
        # A carriage return survives every RPC protocol (nimbus writes it as &#xD; in XML);
        # botocore's own XML request bodies cannot carry one, so REST inputs go without.
        pool = TEXT_POOL if self.protocol in REST and self.direction == "input" else TEXT_POOL + "\r"
        return "".join(self.rng.choice(pool) for _ in range(n))

    def gen_integer(self, shape, depth, location):
        lo = shape.metadata.get("min", -(2**31))
        hi = shape.metadata.get("max", 2**31 - 1)
        return self.rng.randint(int(lo), int(hi))

    def gen_long(self, shape, depth, location):
        lo = shape.metadata.get("min", -(2**53))
        hi = shape.metadata.get("max", 2**53)
        return self.rng.randint(int(lo), int(hi))

    def gen_float(self, shape, depth, location):
        # Quarter steps are exact in float32 too (CBOR sends `float` shapes as singles).
        return self.rng.randint(-4_000_000, 4_000_000) / 4

    gen_double = gen_float

    def gen_boolean(self, shape, depth, location):
        return self.rng.random() < 0.5

    def gen_blob(self, shape, depth, location):
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randint(0, 24)))

    def gen_timestamp(self, shape, depth, location):
        secs = self.rng.randint(0, 4_102_444_800)  # 1970 .. 2100
        millis = self.rng.choice([0, self.rng.randint(1, 999)])
        return datetime.datetime.fromtimestamp(secs, UTC) + datetime.timedelta(milliseconds=millis)


# ------------------------------------------------------------ normalisation


def epoch(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    whole = calendar.timegm(dt.utctimetuple())
    millis = round(dt.microsecond / 1000)
    return whole if millis == 0 else round(whole + millis / 1000, 3)


def to_convention(value):
    """Python params/parsed output -> nimbus's value convention (JSON-able)."""
    if isinstance(value, dict):
        return {k: to_convention(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [to_convention(v) for v in value]
    if isinstance(value, datetime.datetime):
        return epoch(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    return value


def timestamp_format(shape, proto, direction, location):
    """The form botocore (input) or nimbus (output) puts a timestamp in on the wire."""
    explicit = shape.serialization.get("timestampFormat")
    if explicit:
        return explicit.lower()
    if location == "header":
        return "rfc822"
    if location == "querystring":
        return "iso8601"
    if proto in ("query", "ec2", "rest-xml"):
        return "iso8601"
    # JSON and CBOR bodies: epoch seconds, which nimbus writes with milliseconds.
    return "unixtimestamp" if direction == "input" else "unixtimestamp-ms"


def as_sent(value, shape, proto, direction, location=None):
    """The value after the sender's timestamp precision: botocore writes epoch seconds
    (JSON, CBOR) and RFC 822 dates (headers) in whole seconds."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        return {
            k: as_sent(v, shape.members[k], proto, direction,
                       shape.members[k].serialization.get("location") if location == "top" else None)
            for k, v in value.items()
        }
    if kind == "list":
        return [as_sent(v, shape.member, proto, direction, location) for v in value]
    if kind == "map":
        return {k: as_sent(v, shape.value, proto, direction, location) for k, v in value.items()}
    if kind == "timestamp" and timestamp_format(shape, proto, direction, location) in ("unixtimestamp", "rfc822"):
        return value.replace(microsecond=0)
    if kind == "timestamp" and location == "header" and direction == "input":
        # botocore turns a header timestamp into whole seconds before formatting it.
        return value.replace(microsecond=0)
    return value


def diff(expected, got, path="$"):
    """First difference between two convention values, or None. Floats compare exactly."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for k in sorted(set(expected) | set(got)):
            if k not in got:
                return f"{path}.{k}: missing (expected {expected[k]!r})"
            if k not in expected:
                return f"{path}.{k}: unexpected {got[k]!r}"
            d = diff(expected[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return f"{path}: {len(got)} items, expected {len(expected)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            d = diff(e, g, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(expected, bool) or isinstance(got, bool):
        return None if expected is got else f"{path}: {got!r} != {expected!r}"
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        if expected == got or (math.isnan(expected) and math.isnan(got)):
            return None
        return f"{path}: {got!r} != {expected!r}"
    return None if expected == got else f"{path}: {got!r} != {expected!r}"


# ------------------------------------------------------------ requests


def serializer_for(protocol):
    return botocore.serialize.create_serializer(protocol, include_validation=False)


def prepared_request(protocol, params, op_model):
    serialized = serializer_for(protocol).serialize_to_request(params, op_model)
    botocore.awsrequest.prepare_request_dict(serialized, endpoint_url="https://nimbus.example.com")
    prepared = botocore.awsrequest.create_request_object(serialized).prepare()
    url = urllib.parse.urlsplit(prepared.url)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, (bytes, bytearray)):
        body = body.read()
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    return {
        "method": prepared.method,
        "path": url.path or "/",
        "query": url.query,
        "headers": headers,
        "body_b64": base64.b64encode(bytes(body)).decode(),
    }


def build_decode_cases():
    cases = []
    for name, proto in CASES:
        raw, service = MODELS[name]
        for op_name in service.operation_names:
            op = service.operation_model(op_name)
            for variant in range(VARIANTS):
                seed = f"{SEED}/in/{name}/{proto}/{op_name}/{variant}"
                params = {}
                if op.input_shape is not None:
                    params = Generator(seed, proto, "input").value(op.input_shape)
                sent = params
                if op.input_shape is not None:
                    sent = as_sent(params, op.input_shape, proto, "input", "top")
                request = prepared_request(proto, params, op)
                request.update(model=name, protocol=proto)
                cases.append(((name, proto), op_name, to_convention(sent), request))
    return cases


def build_encode_cases():
    cases = []
    for name, proto in CASES:
        raw, service = MODELS[name]
        for op_name in service.operation_names:
            op = service.operation_model(op_name)
            for variant in range(VARIANTS):
                seed = f"{SEED}/out/{name}/{proto}/{op_name}/{variant}"
                output = {}
                if op.output_shape is not None:
                    output = Generator(seed, proto, "output").value(op.output_shape)
                value = to_convention(output)
                expected = value
                if op.output_shape is not None:
                    expected = to_convention(as_sent(output, op.output_shape, proto, "output", "top"))
                request = {
                    "model": name,
                    "protocol": proto,
                    "operation": op_name,
                    "output": value,
                    "request_id": REQUEST_ID,
                }
                cases.append(((name, proto), op_name, expected, request))
    return cases


def query_code(name, shape):
    """The code a query client sees for an error shape (companion model for JSON SQS)."""
    code = shape.metadata.get("error", {}).get("code")
    if code:
        return code
    companion = MODELS.get(f"{name}-query")
    if companion:
        other = companion[0]["shapes"].get(shape.name, {})
        code = other.get("error", {}).get("code")
        if code:
            return code
    return shape.name


def modelled_status(name, shape, default):
    status = shape.metadata.get("error", {}).get("httpStatusCode")
    if status:
        return status
    companion = MODELS.get(f"{name}-query")
    if companion:
        other = companion[0]["shapes"].get(shape.name, {})
        status = other.get("error", {}).get("httpStatusCode")
        if status:
            return status
    return default


def expected_error_code(name, proto, service, shape_name):
    """What botocore reports as Error.Code for an error encoded by shape name."""
    shape = service.shape_for(shape_name)
    if proto in ("query", "ec2"):
        return query_code(name, shape)
    if service.is_query_compatible and proto in ("json", "smithy-rpc-v2-cbor"):
        return query_code(name, shape)
    if proto in REST:
        return shape.metadata.get("error", {}).get("code") or shape_name
    return shape_name


def build_error_cases():
    cases = []
    for name, proto in CASES:
        raw, service = MODELS[name]
        for shape in service.error_shapes:
            shape_name = shape.name
            status = modelled_status(name, shape, 400)
            cases.append((
                (name, proto),
                {"code": shape_name, "message": f"modelled {shape_name} <&> \u00e9", "status": 400},
                {"Code": expected_error_code(name, proto, service, shape_name), "status": status},
            ))
        for code, status in (("InvalidParameterValue", 400), ("ThrottlingException", 400),
                             ("AccessDenied", 403), ("InternalFailure", 500), ("ServiceUnavailable", 503)):
            modelled = [s for s in service.error_shapes
                        if query_code(name, s) == code or s.name == code]
            if modelled:
                continue  # covered above by its shape
            cases.append((
                (name, proto),
                {"code": code, "message": f"plain {code} \"quoted\"", "status": status},
                {"Code": code, "status": status},
            ))
    out = []
    for key, err, want in cases:
        name, proto = key
        request = {"model": name, "protocol": proto, "error": err, "request_id": REQUEST_ID}
        out.append((key, err, want, request))
    return out


@pytest.fixture(scope="module")
def decoded():
    cases = build_decode_cases()
    answers = run_wire("decode", [c[3] for c in cases])
    results = {}
    for (key, op_name, expected, request), answer in zip(cases, answers):
        results.setdefault(key, []).append((op_name, expected, request, answer))
    return results


@pytest.fixture(scope="module")
def encoded():
    cases = build_encode_cases()
    answers = run_wire("encode", [c[3] for c in cases])
    results = {}
    for (key, op_name, expected, request), answer in zip(cases, answers):
        results.setdefault(key, []).append((op_name, expected, request, answer))
    return results


@pytest.fixture(scope="module")
def encoded_errors():
    cases = build_error_cases()
    answers = run_wire("encode", [c[3] for c in cases])
    results = {}
    for (key, err, want, request), answer in zip(cases, answers):
        results.setdefault(key, []).append((err, want, answer))
    return results


def rest_not_ready(answers):
    """The REST codec answers NotImplemented (or 501) until it lands."""

    def placeholder(a):
        return (a.get("error") or {}).get("code") == "NotImplemented" or a.get("status") == 501

    return bool(answers) and all(placeholder(a) for a in answers)


def http_response(answer):
    headers = HTTPHeaderDict()
    for k, v in answer["headers"].items():
        headers[k] = v
    return {
        "status_code": answer["status"],
        "headers": headers,
        "body": base64.b64decode(answer["body_b64"]),
        "context": {},
    }


def strip_metadata(parsed):
    parsed = dict(parsed)
    parsed.pop("ResponseMetadata", None)
    return parsed


HTTP_LAYER_HEADERS = {"content-length", "content-type", "content-md5"}


def without_transport_artifacts(expected, got, shape):
    """Members botocore's HTTP layer fills in by itself (Content-Length of the prepared
    request) or its REST parser always reports (an empty prefix-header map) are only
    compared when the test asked for them."""
    if shape is None or not isinstance(got, dict):
        return got
    out = {}
    for k, v in got.items():
        member = shape.members.get(k)
        if member is not None and k not in expected:
            ser = member.serialization
            if ser.get("location") == "header" and ser.get("name", "").lower() in HTTP_LAYER_HEADERS:
                continue
            if ser.get("location") == "headers" and v == {}:
                continue
            # An absent structure payload is an empty body, which botocore reads as {}.
            if shape.serialization.get("payload") == k and v == {}:
                continue
        out[k] = v
    return out


def without_streaming(value, shape):
    """Streaming payloads (S3 object bodies) are not generated (the edge streams them
    past the codec), so whatever stands in for them is left out of comparisons."""
    if shape is None or not isinstance(value, dict):
        return value
    return {
        k: v for k, v in value.items()
        if not (k in shape.members and shape.members[k].serialization.get("streaming"))
    }


# ------------------------------------------------------------ tests


@pytest.mark.parametrize("name,proto", CASES, ids=CASE_IDS)
def test_decode_matches_botocore_serializer(decoded, name, proto):
    results = decoded[(name, proto)]
    if proto in REST and rest_not_ready([r[3] for r in results]):
        pytest.skip("the REST codec (src/rest.rs) answers NotImplemented: not ready yet")
    failures = []
    for op_name, expected, request, answer in results:
        if "error" in answer:
            failures.append(f"{op_name}: error {answer['error']} for {request}")
            continue
        if answer["operation"] != op_name:
            failures.append(f"{op_name}: decoded as {answer['operation']}")
            continue
        input_shape = MODELS[name][1].operation_model(op_name).input_shape
        got = without_streaming(answer["input"], input_shape)
        d = diff(expected, without_transport_artifacts(expected, got, input_shape))
        if d:
            failures.append(f"{op_name}: {d}\n  request: {request}")
    assert not failures, f"{len(failures)} of {len(results)} cases differ:\n" + "\n".join(failures[:8])


@pytest.mark.parametrize("name,proto", CASES, ids=CASE_IDS)
def test_encode_parses_with_botocore(encoded, name, proto):
    results = encoded[(name, proto)]
    if proto in REST and rest_not_ready([r[3] for r in results]):
        pytest.skip("the REST codec (src/rest.rs) answers NotImplemented: not ready yet")
    raw, service = MODELS[name]
    parser = botocore.parsers.create_parser(proto)
    failures = []
    for op_name, expected, request, answer in results:
        if "error" in answer:
            failures.append(f"{op_name}: tool error {answer['error']}")
            continue
        op = service.operation_model(op_name)
        try:
            parsed = parser.parse(http_response(answer), op.output_shape)
            if op_name == "GetBucketLocation":
                # S3 sends the constraint as the document's text; botocore reads it in this handler.
                raw = types.SimpleNamespace(raw=True, content=base64.b64decode(answer["body_b64"]))
                botocore.handlers.parse_get_bucket_location(parsed, raw)
        except Exception as e:  # noqa: BLE001 - any parser failure is the finding
            body = base64.b64decode(answer["body_b64"])[:400]
            failures.append(f"{op_name}: botocore cannot parse ({e!r}): {body!r}")
            continue
        meta = parsed.get("ResponseMetadata", {})
        if answer["status"] // 100 != 2:
            failures.append(f"{op_name}: status {answer['status']}")
        # botocore's RPC v2 parser only reports metadata for operations with an output.
        has_meta = proto != "smithy-rpc-v2-cbor" or op.output_shape is not None
        if proto not in REST and has_meta and meta.get("RequestId") != REQUEST_ID:
            failures.append(f"{op_name}: RequestId {meta.get('RequestId')!r}")
        got = without_streaming(to_convention(strip_metadata(parsed)), op.output_shape)
        got = without_transport_artifacts(expected, got, op.output_shape)
        d = diff(expected, got)
        if d:
            body = base64.b64decode(answer["body_b64"])[:600]
            failures.append(f"{op_name}: {d}\n  body: {body!r}")
    assert not failures, f"{len(failures)} of {len(results)} cases differ:\n" + "\n".join(failures[:8])


@pytest.mark.parametrize("name,proto", CASES, ids=CASE_IDS)
def test_errors_parse_with_botocore(encoded_errors, name, proto):
    results = encoded_errors[(name, proto)]
    if proto in REST and rest_not_ready([r[2] for r in results]):
        pytest.skip("the REST codec (src/rest.rs) answers NotImplemented: not ready yet")
    parser = botocore.parsers.create_parser(proto)
    failures = []
    for err, want, answer in results:
        try:
            parsed = parser.parse(http_response(answer), None)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{err['code']}: botocore cannot parse ({e!r}): {answer}")
            continue
        error = parsed.get("Error", {})
        meta = parsed.get("ResponseMetadata", {})
        checks = {
            "Code": (error.get("Code"), want["Code"]),
            "Message": (error.get("Message"), err["message"]),
            "HTTPStatusCode": (meta.get("HTTPStatusCode"), want["status"]),
            "RequestId": (meta.get("RequestId"), REQUEST_ID),
        }
        for what, (got, expected) in checks.items():
            if got != expected:
                failures.append(f"{err['code']}: {what} {got!r} != {expected!r}")
    assert not failures, "\n".join(failures[:12])


def test_sqs_queue_does_not_exist_in_json_and_query():
    """The case every SQS client depends on, spelled out."""
    want = "AWS.SimpleQueueService.NonExistentQueue"
    requests = [
        {"model": m, "protocol": p, "request_id": "r-1",
         "error": {"code": "QueueDoesNotExist", "message": "The specified queue does not exist.", "status": 400}}
        for m, p in (("sqs", "json"), ("sqs-query", "query"))
    ]
    json_answer, query_answer = run_wire("encode", requests)
    assert json_answer["headers"]["x-amzn-query-error"] == f"{want};Sender"
    body = json.loads(base64.b64decode(json_answer["body_b64"]))
    assert body["__type"].endswith("#QueueDoesNotExist")
    parsed = botocore.parsers.create_parser("json").parse(http_response(json_answer), None)
    assert parsed["Error"]["Code"] == want
    assert parsed["Error"]["QueryErrorCode"] == "QueueDoesNotExist"
    assert parsed["Error"]["Type"] == "Sender"
    parsed = botocore.parsers.create_parser("query").parse(http_response(query_answer), None)
    assert parsed["Error"]["Code"] == want
    assert parsed["Error"]["Type"] == "Sender"
    assert parsed["ResponseMetadata"]["RequestId"] == "r-1"
    # The client maps the query code back to the modelled exception class.
    client = botocore.session.get_session().create_client(
        "sqs", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    assert client.exceptions.from_code("QueueDoesNotExist") is client.exceptions.QueueDoesNotExist


def test_malformed_requests_are_aws_errors():
    cases = [
        ({"model": "sqs", "protocol": "json", "headers": {"X-Amz-Target": "AmazonSQS.ListQueues"},
          "body_b64": base64.b64encode(b"{not json").decode()}, "SerializationException"),
        ({"model": "sqs", "protocol": "json", "headers": {"X-Amz-Target": "AmazonSQS.NoSuchThing"},
          "body_b64": ""}, "UnknownOperationException"),
        ({"model": "sqs-query", "protocol": "query", "headers": {},
          "body_b64": base64.b64encode(b"Action=SendMessage&DelaySeconds=x").decode()}, "InvalidParameterValue"),
        ({"model": "sts", "protocol": "query", "headers": {},
          "body_b64": base64.b64encode(b"Action=Nope").decode()}, "InvalidAction"),
        ({"model": "cloudwatch", "protocol": "smithy-rpc-v2-cbor",
          "path": "/service/GraniteServiceVersion20100801/operation/ListMetrics",
          "headers": {"smithy-protocol": "rpc-v2-cbor"}, "body_b64": base64.b64encode(b"\xbf\x61").decode()},
         "SerializationException"),
    ]
    answers = run_wire("decode", [dict({"method": "POST", "path": "/", "query": ""}, **c) for c, _ in cases])
    for (case, code), answer in zip(cases, answers):
        assert answer.get("error", {}).get("code") == code, (case, answer)
