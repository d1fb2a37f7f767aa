"""EC2, key pairs and instance types: CreateKeyPair, ImportKeyPair, DescribeKeyPairs,
DeleteKeyPair, DescribeInstanceTypes. Driven through boto3 (query protocol) and the
aws CLI, asserting what the EC2 API reference and user guide document.

Written before nimbus's implementation and validated against moto
(NIMBUS_E2E_ENDPOINT=http://127.0.0.1:PORT NIMBUS_E2E_PEER=moto); the checks where
moto departs from documented AWS behaviour are marked `moto_gap` and stay strict
for nimbus. Every test makes its own uniquely named key pairs and deletes them.

Key material is checked without third-party crypto: `ssh-keygen -y` validates a
private key and derives its public key; fingerprints are recomputed here from DER
that is built by hand (PKCS#8 around the PKCS#1 key, SubjectPublicKeyInfo from the
ssh-rsa blob). If `cryptography` is importable it is used as an extra check.

Fingerprints, as documented (EC2 user guide "Verify the fingerprint of your key pair"):
  created RSA:   SHA-1 of the PKCS#8 DER private key, colon-separated lower hex
                 (openssl pkcs8 -topk8 -nocrypt -outform DER | openssl sha1 -c)
  imported RSA:  MD5 of the DER SubjectPublicKeyInfo, colon-separated lower hex
                 (openssl rsa -pubout -outform DER | openssl md5 -c)
  ED25519 (either way): base64 SHA-256 of the OpenSSH public key blob, with padding.
"""
import base64
import datetime
import hashlib
import os
import re
import shutil
import struct
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from s3_helpers import ON_MOTO, moto_gap  # noqa: F401  (peer detection lives there)

try:  # optional: only a cross-check, never required
    from cryptography.hazmat.primitives import serialization as _crypto_ser
except ImportError:  # pragma: no cover - depends on the venv
    _crypto_ser = None


# --- helpers / fixtures ---------------------------------------------------------

KEY_ID = re.compile(r"^key-[0-9a-f]{17}$")
SHA1_COLON = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){19}$")
MD5_COLON = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){15}$")
SHA256_B64 = re.compile(r"^[A-Za-z0-9+/]{43}=$")


def uniq(prefix="k"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def colon_hex(digest):
    return ":".join(f"{b:02x}" for b in digest)


def need_ssh_keygen():
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen (openssh-client) is not installed")


def ssh_keygen_y(material, tmp_path):
    """Validate a private key with `ssh-keygen -y` and return its OpenSSH public key line."""
    need_ssh_keygen()
    path = tmp_path / f"priv-{uuid.uuid4().hex[:8]}"
    path.write_text(material if material.endswith("\n") else material + "\n")
    os.chmod(path, 0o600)
    p = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, f"ssh-keygen -y rejected the key: {p.stderr}"
    return p.stdout.strip()


def ssh_keygen_new(tmp_path, kind):
    """A fresh key pair from ssh-keygen; returns the public key file's contents (bytes)."""
    need_ssh_keygen()
    path = tmp_path / f"k-{kind}-{uuid.uuid4().hex[:8]}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "nimbus-e2e", "-f", str(path)]
    if kind == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, capture_output=True)
    return (tmp_path / (path.name + ".pub")).read_bytes()


def pub_blob(line):
    """'ssh-xxx BASE64 [comment]' -> the decoded wire-format blob."""
    return base64.b64decode(line.split()[1])


def same_public_key(a, b):
    """Compare two OpenSSH public key lines by type and blob (comments may differ)."""
    return a.split()[:2] == b.split()[:2]


# minimal DER encoding, enough for RSA PKCS#8 and SubjectPublicKeyInfo
def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def _der_uint(v):
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big"))


_RSA_ALG_ID = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")


def _ssh_fields(blob):
    out, i = [], 0
    while i < len(blob):
        (n,) = struct.unpack(">I", blob[i:i + 4])
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    return out


def pem_body(pem):
    return base64.b64decode("".join(l for l in pem.strip().splitlines() if not l.startswith("-----")))


def fp_created_rsa(pem):
    """SHA-1 of the PKCS#8 DER form of a PKCS#1 PEM private key, colon hex."""
    pkcs8 = _tlv(0x30, _der_uint(0) + _RSA_ALG_ID + _tlv(0x04, pem_body(pem)))
    return colon_hex(hashlib.sha1(pkcs8).digest())


def fp_imported_rsa(line):
    """MD5 of the DER SubjectPublicKeyInfo of an ssh-rsa public key, colon hex."""
    kind, e, n = _ssh_fields(pub_blob(line))
    assert kind == b"ssh-rsa"
    rsa_pub = _tlv(0x30, _der_uint(int.from_bytes(n, "big")) + _der_uint(int.from_bytes(e, "big")))
    spki = _tlv(0x30, _RSA_ALG_ID + _tlv(0x03, b"\x00" + rsa_pub))
    return colon_hex(hashlib.md5(spki).digest())


def fp_ed25519(line):
    """base64 SHA-256 of the OpenSSH public key blob, with '=' padding."""
    return base64.b64encode(hashlib.sha256(pub_blob(line)).digest()).decode()


@pytest.fixture
def ec2(client):
    return client("ec2")


@pytest.fixture
def keys(ec2):
    """Records key names to delete after the test; keys.create / keys.imp wrap the calls."""
    made = []

    class K:
        names = made

        @staticmethod
        def create(name=None, **kw):
            name = name or uniq()
            r = ec2.create_key_pair(KeyName=name, **kw)
            made.append(name)
            return r

        @staticmethod
        def imp(material, name=None, **kw):
            name = name or uniq("imp")
            r = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=material, **kw)
            made.append(name)
            return r

    yield K
    for name in made:
        try:
            ec2.delete_key_pair(KeyName=name)
        except ClientError:
            pass


def describe_one(ec2, name, **kw):
    r = ec2.describe_key_pairs(KeyNames=[name], **kw)["KeyPairs"]
    assert len(r) == 1
    return r[0]


def tags_of(x):
    return {t["Key"]: t["Value"] for t in x.get("Tags", [])}


# --- 1. CreateKeyPair -----------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"KeyType": "rsa", "KeyFormat": "pem"}], ids=["default", "rsa-pem"])
def test_create_rsa_pem(ec2, keys, tmp_path, kw):
    name = uniq()
    r = keys.create(name, **kw)
    assert r["KeyName"] == name
    assert KEY_ID.match(r["KeyPairId"]), r["KeyPairId"]
    assert SHA1_COLON.match(r["KeyFingerprint"]), r["KeyFingerprint"]
    pem = r["KeyMaterial"]
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert pem.rstrip().endswith("-----END RSA PRIVATE KEY-----")
    body = pem_body(pem)
    assert body[0] == 0x30  # a DER SEQUENCE (PKCS#1 RSAPrivateKey)
    pub = ssh_keygen_y(pem, tmp_path)
    assert pub.startswith("ssh-rsa AAAA")
    kind, e, n = _ssh_fields(pub_blob(pub))
    assert int.from_bytes(n, "big").bit_length() == 2048
    if _crypto_ser is not None:
        key = _crypto_ser.load_pem_private_key(pem.encode(), password=None)
        assert key.key_size == 2048
        assert key.public_key().public_numbers().n == int.from_bytes(n, "big")


@moto_gap("the fingerprint of a created RSA key is the SHA-1 of the public key, not of the PKCS#8 private key")
def test_create_rsa_fingerprint_is_sha1_of_pkcs8_private_key(ec2, keys):
    r = keys.create()
    assert r["KeyFingerprint"] == fp_created_rsa(r["KeyMaterial"])
    assert describe_one(ec2, r["KeyName"])["KeyFingerprint"] == r["KeyFingerprint"]


def test_create_ed25519(ec2, keys, tmp_path):
    name = uniq()
    r = keys.create(name, KeyType="ed25519", KeyFormat="pem")
    assert r["KeyName"] == name
    assert KEY_ID.match(r["KeyPairId"]), r["KeyPairId"]
    assert r["KeyFingerprint"]
    material = r["KeyMaterial"]
    assert material.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert material.rstrip().endswith("-----END OPENSSH PRIVATE KEY-----")
    pub = ssh_keygen_y(material, tmp_path)
    assert pub.startswith("ssh-ed25519 AAAA")
    assert len(_ssh_fields(pub_blob(pub))[1]) == 32
    d = describe_one(ec2, name)
    assert d["KeyType"] == "ed25519"
    assert d["KeyPairId"] == r["KeyPairId"]


@moto_gap("ED25519 fingerprints are colon hex (and differ between create and describe), not base64 SHA-256")
def test_create_ed25519_fingerprint_is_base64_sha256(ec2, keys, tmp_path):
    r = keys.create(KeyType="ed25519")
    pub = ssh_keygen_y(r["KeyMaterial"], tmp_path)
    assert SHA256_B64.match(r["KeyFingerprint"]), r["KeyFingerprint"]
    assert r["KeyFingerprint"] == fp_ed25519(pub)
    assert describe_one(ec2, r["KeyName"])["KeyFingerprint"] == r["KeyFingerprint"]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_created_key_public_key_matches_private_key(ec2, keys, tmp_path, kind):
    r = keys.create(KeyType=kind)
    derived = ssh_keygen_y(r["KeyMaterial"], tmp_path)
    d = describe_one(ec2, r["KeyName"], IncludePublicKey=True)
    assert same_public_key(d["PublicKey"], derived), (d["PublicKey"], derived)


def test_create_keys_are_distinct(keys):
    a, b = keys.create(), keys.create()
    assert a["KeyPairId"] != b["KeyPairId"]
    assert a["KeyMaterial"] != b["KeyMaterial"]
    assert a["KeyFingerprint"] != b["KeyFingerprint"]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_create_duplicate_name(ec2, keys, kind):
    name = uniq()
    first = keys.create(name, KeyType=kind)
    with pytest.raises(ClientError) as e:
        ec2.create_key_pair(KeyName=name, KeyType=kind)
    assert err(e) == ("InvalidKeyPair.Duplicate", 400)
    # the original key is untouched
    assert describe_one(ec2, name)["KeyPairId"] == first["KeyPairId"]


def test_create_with_tag_specifications(ec2, keys):
    tag = uniq("t")
    r = keys.create(TagSpecifications=[{"ResourceType": "key-pair", "Tags": [
        {"Key": tag, "Value": "v1"}, {"Key": "Name", "Value": "my key"}]}])
    assert tags_of(r) == {tag: "v1", "Name": "my key"}
    assert tags_of(describe_one(ec2, r["KeyName"])) == {tag: "v1", "Name": "my key"}


def test_create_via_cli(endpoint, keys, tmp_path):
    from conftest import aws_cli
    name = uniq("cli")
    keys.names.append(name)
    r = aws_cli(endpoint, "ec2", "create-key-pair", "--key-name", name, "--key-type", "ed25519")
    assert r["KeyName"] == name
    assert KEY_ID.match(r["KeyPairId"])
    assert ssh_keygen_y(r["KeyMaterial"], tmp_path).startswith("ssh-ed25519 ")


# --- 2. ImportKeyPair -----------------------------------------------------------------

def test_import_rsa(ec2, keys, tmp_path):
    material = ssh_keygen_new(tmp_path, "rsa")
    name = uniq("imp")
    r = keys.imp(material, name)
    assert r["KeyName"] == name
    assert KEY_ID.match(r["KeyPairId"]), r["KeyPairId"]
    assert MD5_COLON.match(r["KeyFingerprint"]), r["KeyFingerprint"]
    assert r["KeyFingerprint"] == fp_imported_rsa(material.decode())
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert d["KeyPairId"] == r["KeyPairId"]
    assert d["KeyFingerprint"] == r["KeyFingerprint"]
    assert d["KeyType"] == "rsa"
    assert same_public_key(d["PublicKey"], material.decode())


def test_import_ed25519(ec2, keys, tmp_path):
    material = ssh_keygen_new(tmp_path, "ed25519")
    name = uniq("imp")
    r = keys.imp(material, name)
    assert r["KeyName"] == name
    assert KEY_ID.match(r["KeyPairId"]), r["KeyPairId"]
    assert r["KeyFingerprint"]
    d = describe_one(ec2, name, IncludePublicKey=True)
    assert d["KeyPairId"] == r["KeyPairId"]
    assert d["KeyType"] == "ed25519"
    assert d["PublicKey"].startswith("ssh-ed25519 AAAA")
    assert same_public_key(d["PublicKey"], material.decode())


@moto_gap("imported ED25519 fingerprints are colon hex of SHA-256, not base64")
def test_import_ed25519_fingerprint_is_base64_sha256(ec2, keys, tmp_path):
    material = ssh_keygen_new(tmp_path, "ed25519")
    r = keys.imp(material)
    assert SHA256_B64.match(r["KeyFingerprint"]), r["KeyFingerprint"]
    assert r["KeyFingerprint"] == fp_ed25519(material.decode())
    assert describe_one(ec2, r["KeyName"])["KeyFingerprint"] == r["KeyFingerprint"]


def test_import_without_comment(ec2, keys, tmp_path):
    line = ssh_keygen_new(tmp_path, "ed25519").decode()
    bare = " ".join(line.split()[:2]).encode()
    r = keys.imp(bare)
    d = describe_one(ec2, r["KeyName"], IncludePublicKey=True)
    assert same_public_key(d["PublicKey"], line)


def test_import_with_tag_specifications(ec2, keys, tmp_path):
    tag = uniq("t")
    r = keys.imp(ssh_keygen_new(tmp_path, "ed25519"),
                 TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": tag, "Value": "x"}]}])
    assert tags_of(r) == {tag: "x"}
    assert tags_of(describe_one(ec2, r["KeyName"])) == {tag: "x"}


@moto_gap("malformed public key material is InvalidKeyPair.Format, not InvalidKey.Format (a PEM private key: HTTP 500)")
@pytest.mark.parametrize("material", [
    b"garbage",
    b"ssh-rsa not-base64-at-all!!",
    b"ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x05short"),
    b"-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK==\n-----END RSA PRIVATE KEY-----\n",
], ids=["garbage", "bad-base64", "truncated-ed25519", "private-pem"])
def test_import_malformed(ec2, material):
    name = uniq("bad")
    try:
        with pytest.raises(ClientError) as e:
            ec2.import_key_pair(KeyName=name, PublicKeyMaterial=material)
        assert err(e) == ("InvalidKey.Format", 400)
    finally:
        try:
            ec2.delete_key_pair(KeyName=name)
        except ClientError:
            pass


def test_import_malformed_is_rejected(ec2):
    """Whatever the error code, malformed material must not create a key pair."""
    name = uniq("bad")
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=b"garbage")
    assert err(e)[1] == 400
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[name])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)


def test_import_duplicate(ec2, keys, tmp_path):
    material = ssh_keygen_new(tmp_path, "ed25519")
    name = uniq("imp")
    first = keys.imp(material, name)
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=ssh_keygen_new(tmp_path, "rsa"))
    assert err(e) == ("InvalidKeyPair.Duplicate", 400)
    assert describe_one(ec2, name)["KeyPairId"] == first["KeyPairId"]
    # a created key's name is taken for imports too
    created = keys.create()
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=created["KeyName"], PublicKeyMaterial=material)
    assert err(e) == ("InvalidKeyPair.Duplicate", 400)


def test_import_via_cli_fileb(endpoint, ec2, keys, tmp_path):
    from conftest import aws_cli
    material = ssh_keygen_new(tmp_path, "rsa")
    path = tmp_path / "cli.pub"
    path.write_bytes(material)
    name = uniq("cli")
    keys.names.append(name)
    r = aws_cli(endpoint, "ec2", "import-key-pair", "--key-name", name,
                "--public-key-material", f"fileb://{path}")
    assert r["KeyName"] == name
    assert r["KeyFingerprint"] == fp_imported_rsa(material.decode())
    d = aws_cli(endpoint, "ec2", "describe-key-pairs", "--key-names", name, "--include-public-key")
    assert [k["KeyName"] for k in d["KeyPairs"]] == [name]
    assert same_public_key(d["KeyPairs"][0]["PublicKey"], material.decode())


# --- 3. DescribeKeyPairs --------------------------------------------------------------

def test_describe_all(ec2, keys, tmp_path):
    a = keys.create()
    b = keys.imp(ssh_keygen_new(tmp_path, "ed25519"))
    listed = {k["KeyName"]: k for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert listed[a["KeyName"]]["KeyPairId"] == a["KeyPairId"]
    assert listed[b["KeyName"]]["KeyPairId"] == b["KeyPairId"]
    # PublicKey only on request
    assert "PublicKey" not in listed[a["KeyName"]]
    assert "KeyMaterial" not in listed[a["KeyName"]]


def test_describe_by_names(ec2, keys):
    a, b, _c = keys.create(), keys.create(), keys.create()
    r = ec2.describe_key_pairs(KeyNames=[a["KeyName"], b["KeyName"]])["KeyPairs"]
    assert sorted(k["KeyName"] for k in r) == sorted([a["KeyName"], b["KeyName"]])
    by = {k["KeyName"]: k for k in r}
    assert by[a["KeyName"]]["KeyFingerprint"] == a["KeyFingerprint"]
    assert by[b["KeyName"]]["KeyPairId"] == b["KeyPairId"]


@moto_gap("DescribeKeyPairs ignores KeyPairIds (returns every key pair)")
def test_describe_by_key_pair_ids(ec2, keys):
    a, b, _c = keys.create(), keys.create(KeyType="ed25519"), keys.create()
    r = ec2.describe_key_pairs(KeyPairIds=[a["KeyPairId"], b["KeyPairId"]])["KeyPairs"]
    assert sorted(k["KeyPairId"] for k in r) == sorted([a["KeyPairId"], b["KeyPairId"]])
    assert sorted(k["KeyName"] for k in r) == sorted([a["KeyName"], b["KeyName"]])


def test_describe_filter_key_name(ec2, keys):
    a, b = keys.create(), keys.create()
    r = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [a["KeyName"]]}])["KeyPairs"]
    assert [k["KeyName"] for k in r] == [a["KeyName"]]
    r = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [a["KeyName"], b["KeyName"]]}])["KeyPairs"]
    assert sorted(k["KeyName"] for k in r) == sorted([a["KeyName"], b["KeyName"]])


def test_describe_filter_key_name_wildcard(ec2, keys):
    prefix = uniq("wc")
    a, b = keys.create(prefix + "-a"), keys.create(prefix + "-b")
    keys.create()
    r = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [prefix + "-*"]}])["KeyPairs"]
    assert sorted(k["KeyName"] for k in r) == sorted([a["KeyName"], b["KeyName"]])


def test_describe_filter_fingerprint(ec2, keys, tmp_path):
    a = keys.imp(ssh_keygen_new(tmp_path, "rsa"))
    keys.create()
    r = ec2.describe_key_pairs(Filters=[{"Name": "fingerprint", "Values": [a["KeyFingerprint"]]}])["KeyPairs"]
    assert [k["KeyName"] for k in r] == [a["KeyName"]]
    c = keys.create()
    r = ec2.describe_key_pairs(Filters=[{"Name": "fingerprint", "Values": [c["KeyFingerprint"]]}])["KeyPairs"]
    assert [k["KeyName"] for k in r] == [c["KeyName"]]


def test_describe_filter_key_pair_id(ec2, keys):
    a = keys.create()
    keys.create()
    r = ec2.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [a["KeyPairId"]]}])["KeyPairs"]
    assert [k["KeyName"] for k in r] == [a["KeyName"]]


def test_describe_filter_tags(ec2, keys):
    tag = uniq("t")
    spec = lambda v: [{"ResourceType": "key-pair", "Tags": [{"Key": tag, "Value": v}]}]  # noqa: E731
    a = keys.create(TagSpecifications=spec("blue"))
    b = keys.create(TagSpecifications=spec("green"))
    keys.create()
    r = ec2.describe_key_pairs(Filters=[{"Name": f"tag:{tag}", "Values": ["blue"]}])["KeyPairs"]
    assert [k["KeyName"] for k in r] == [a["KeyName"]]
    r = ec2.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": [tag]}])["KeyPairs"]
    assert sorted(k["KeyName"] for k in r) == sorted([a["KeyName"], b["KeyName"]])
    r = ec2.describe_key_pairs(Filters=[{"Name": f"tag:{tag}", "Values": ["red"]}])["KeyPairs"]
    assert r == []


def test_describe_filters_and_names_combine(ec2, keys):
    tag = uniq("t")
    a = keys.create(TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": tag, "Value": "1"}]}])
    b = keys.create()
    r = ec2.describe_key_pairs(KeyNames=[a["KeyName"], b["KeyName"]],
                               Filters=[{"Name": "tag-key", "Values": [tag]}])["KeyPairs"]
    assert [k["KeyName"] for k in r] == [a["KeyName"]]


def test_describe_unknown_name(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[uniq("missing")])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)


def test_describe_known_and_unknown_names(ec2, keys):
    a = keys.create()
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[a["KeyName"], uniq("missing")])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)


@moto_gap("DescribeKeyPairs ignores KeyPairIds (returns every key pair)")
def test_describe_unknown_key_pair_id(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyPairIds=["key-0123456789abcdef0"])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)


def test_describe_filter_no_match_is_empty(ec2):
    r = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [uniq("missing")]}])
    assert r["KeyPairs"] == []


def test_describe_include_public_key(ec2, keys, tmp_path):
    rsa = keys.create(KeyType="rsa")
    ed = keys.create(KeyType="ed25519")
    r = ec2.describe_key_pairs(KeyNames=[rsa["KeyName"], ed["KeyName"]], IncludePublicKey=True)["KeyPairs"]
    by = {k["KeyName"]: k for k in r}
    assert re.match(r"^ssh-rsa AAAA[A-Za-z0-9+/]+=*( .*)?$", by[rsa["KeyName"]]["PublicKey"])
    assert re.match(r"^ssh-ed25519 AAAA[A-Za-z0-9+/]+=*( .*)?$", by[ed["KeyName"]]["PublicKey"])
    r = ec2.describe_key_pairs(KeyNames=[rsa["KeyName"]], IncludePublicKey=False)["KeyPairs"]
    assert "PublicKey" not in r[0]


def test_describe_create_time(ec2, keys, tmp_path):
    before = datetime.datetime.now(datetime.timezone.utc)
    a = keys.create()
    b = keys.imp(ssh_keygen_new(tmp_path, "rsa"))
    for name in (a["KeyName"], b["KeyName"]):
        t = describe_one(ec2, name)["CreateTime"]
        assert isinstance(t, datetime.datetime) and t.tzinfo is not None
        # generous: the server clock may differ a little from ours
        assert abs((t - before).total_seconds()) < 600, (t, before)


def test_describe_key_type(ec2, keys, tmp_path):
    ed = keys.create(KeyType="ed25519")
    imp_rsa = keys.imp(ssh_keygen_new(tmp_path, "rsa"))
    imp_ed = keys.imp(ssh_keygen_new(tmp_path, "ed25519"))
    assert describe_one(ec2, ed["KeyName"])["KeyType"] == "ed25519"
    assert describe_one(ec2, imp_rsa["KeyName"])["KeyType"] == "rsa"
    assert describe_one(ec2, imp_ed["KeyName"])["KeyType"] == "ed25519"


@pytest.mark.parametrize("kw", [
    pytest.param({}, id="default", marks=moto_gap("DescribeKeyPairs omits KeyType for a CreateKeyPair RSA key made without KeyType")),
    pytest.param({"KeyType": "rsa"}, id="rsa"),
])
def test_describe_key_type_created_rsa(ec2, keys, kw):
    a = keys.create(**kw)
    assert describe_one(ec2, a["KeyName"])["KeyType"] == "rsa"


# --- 4. DeleteKeyPair -----------------------------------------------------------------

def test_delete_by_name(ec2, keys):
    a = keys.create()
    r = ec2.delete_key_pair(KeyName=a["KeyName"])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["Return"] is True
    assert r["KeyPairId"] == a["KeyPairId"]
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[a["KeyName"]])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)
    r = ec2.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [a["KeyPairId"]]}])
    assert r["KeyPairs"] == []


@moto_gap("DeleteKeyPair ignores KeyPairId (returns true, deletes nothing)")
def test_delete_by_key_pair_id(ec2, keys, tmp_path):
    a = keys.imp(ssh_keygen_new(tmp_path, "ed25519"))
    other = keys.create()
    r = ec2.delete_key_pair(KeyPairId=a["KeyPairId"])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=[a["KeyName"]])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)
    assert describe_one(ec2, other["KeyName"])["KeyPairId"] == other["KeyPairId"]


@moto_gap("DescribeKeyPairs ignores KeyPairIds (returns every key pair)")
def test_describe_deleted_key_pair_id(ec2, keys):
    a = keys.create()
    ec2.delete_key_pair(KeyPairId=a["KeyPairId"])
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyPairIds=[a["KeyPairId"]])
    assert err(e) == ("InvalidKeyPair.NotFound", 400)


def test_delete_missing_name_succeeds(ec2):
    # documented AWS behaviour: deleting a key name that does not exist is not an error
    r = ec2.delete_key_pair(KeyName=uniq("missing"))
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["Return"] is True


def test_delete_then_recreate_same_name(ec2, keys):
    name = uniq()
    a = keys.create(name)
    ec2.delete_key_pair(KeyName=name)
    b = keys.create(name, KeyType="ed25519")
    assert b["KeyPairId"] != a["KeyPairId"]
    assert describe_one(ec2, name)["KeyType"] == "ed25519"


# --- 5. DescribeInstanceTypes ---------------------------------------------------------

SPECS = {  # type: (default vCPUs, memory MiB)
    "t3.micro": (2, 1024),
    "t2.micro": (1, 1024),
    "m5.large": (2, 8192),
    "c5.xlarge": (4, 8192),
    "r5.large": (2, 16384),
}


def all_instance_types(ec2, **kw):
    out, token = [], None
    for _ in range(200):
        args = dict(kw, **({"NextToken": token} if token else {}))
        r = ec2.describe_instance_types(**args)
        out += r["InstanceTypes"]
        token = r.get("NextToken")
        if not token:
            return out
    raise AssertionError("pagination did not end")


def test_describe_instance_types_by_name(ec2):
    r = ec2.describe_instance_types(InstanceTypes=list(SPECS))["InstanceTypes"]
    by = {t["InstanceType"]: t for t in r}
    assert sorted(by) == sorted(SPECS)
    assert len(r) == len(SPECS)
    for name, (vcpus, mib) in SPECS.items():
        t = by[name]
        assert t["VCpuInfo"]["DefaultVCpus"] == vcpus, name
        assert t["MemoryInfo"]["SizeInMiB"] == mib, name
        assert "x86_64" in t["ProcessorInfo"]["SupportedArchitectures"], name


@pytest.mark.parametrize("name", list(SPECS))
def test_describe_instance_type_single(ec2, name):
    r = ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"]
    assert [t["InstanceType"] for t in r] == [name]
    assert (r[0]["VCpuInfo"]["DefaultVCpus"], r[0]["MemoryInfo"]["SizeInMiB"]) == SPECS[name]


@pytest.mark.parametrize("types", [["t9.nope"], ["t3.micro", "x1.bogus"]], ids=["unknown", "mixed"])
def test_describe_instance_types_unknown(ec2, types):
    with pytest.raises(ClientError) as e:
        ec2.describe_instance_types(InstanceTypes=types)
    assert err(e) == ("InvalidInstanceType", 400)


def test_describe_instance_types_filter_wildcard(ec2):
    got = [t["InstanceType"] for t in all_instance_types(ec2, Filters=[{"Name": "instance-type", "Values": ["t3.*"]}])]
    assert "t3.micro" in got
    assert all(n.startswith("t3.") for n in got), got  # not t3a.*
    assert len(got) == len(set(got))
    assert set(got) <= {"t3.nano", "t3.micro", "t3.small", "t3.medium", "t3.large", "t3.xlarge", "t3.2xlarge"}
    # the filter agrees with the full catalogue filtered here
    everything = [t["InstanceType"] for t in all_instance_types(ec2, MaxResults=100)]
    assert sorted(got) == sorted(n for n in everything if n.startswith("t3."))


def test_describe_instance_types_filter_exact(ec2):
    r = ec2.describe_instance_types(Filters=[{"Name": "instance-type", "Values": ["m5.large", "c5.xlarge"]}])
    assert sorted(t["InstanceType"] for t in r["InstanceTypes"]) == ["c5.xlarge", "m5.large"]


_IGNORES_MAX = moto_gap("DescribeInstanceTypes ignores MaxResults (everything in one page, no NextToken)")


@pytest.mark.parametrize("page", [pytest.param(5, marks=_IGNORES_MAX), pytest.param(7, marks=_IGNORES_MAX), 100])
def test_describe_instance_types_pagination(ec2, page):
    flt = [{"Name": "instance-type", "Values": ["t*"]}]
    pages, token, seen = 0, None, []
    while True:
        kw = {"Filters": flt, "MaxResults": page}
        if token:
            kw["NextToken"] = token
        r = ec2.describe_instance_types(**kw)
        pages += 1
        assert len(r["InstanceTypes"]) <= page
        seen += [t["InstanceType"] for t in r["InstanceTypes"]]
        token = r.get("NextToken")
        if not token:
            break
        assert r["InstanceTypes"], "a page with a NextToken must not be empty"
        assert pages < 100
    assert len(seen) == len(set(seen)), "no type may appear on two pages"
    assert all(n.startswith("t") for n in seen)
    assert {"t2.micro", "t3.micro"} <= set(seen)
    assert len(seen) > 5
    if page == 5:
        assert pages >= 2
    # the same set as one big listing
    full = [t["InstanceType"] for t in all_instance_types(ec2, Filters=flt, MaxResults=100)]
    assert sorted(seen) == sorted(full)


def test_describe_instance_types_via_cli(endpoint):
    from conftest import aws_cli
    r = aws_cli(endpoint, "ec2", "describe-instance-types", "--instance-types", "c5.xlarge")
    [t] = r["InstanceTypes"]
    assert t["InstanceType"] == "c5.xlarge"
    assert t["VCpuInfo"]["DefaultVCpus"] == 4
    assert t["MemoryInfo"]["SizeInMiB"] == 8192
