"""S3 object records of the layout main wrote before the binary summary (the
whole record as JSON after its length) read exactly as main read them, before
and after each record is rewritten in the current layout (issue 11).

fixtures/json-records-data.tar.gz is a data directory written by nimbus at
main 6ca26e9 and killed with SIGKILL after it answered `read_all` (reads
only since its last write), so that its records are still in the write-ahead
log; fixtures/json-records.json is what it answered. The restored copy of the
archived object lasts 30,000 days, so that the answers do not change with the
date. Both were made with

    NIMBUS_BIN=/path/to/nimbus-at-6ca26e9 python tests/e2e/test_s3_record_layouts.py make

which runs `write_all` and `read_all` below against that binary.
"""
import hashlib
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(__file__))

from conftest import Server  # noqa: E402
from s3_helpers import make_s3  # noqa: E402

HERE = os.path.dirname(__file__)
FIXTURE = os.path.join(HERE, "fixtures", "json-records-data.tar.gz")
EXPECTED = os.path.join(HERE, "fixtures", "json-records.json")
PLAIN, VERSIONED = "layouts", "layouts-versions"
ODD_KEY = "ünï cödé/key & <x>.txt"


def write_all(s3):
    """Every kind of record a listing or a read distinguishes."""
    s3.create_bucket(Bucket=PLAIN)
    s3.put_bucket_ownership_controls(
        Bucket=PLAIN, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.delete_public_access_block(Bucket=PLAIN)
    s3.put_object(Bucket=PLAIN, Key="small.txt", Body=b"small body", ContentType="text/plain",
                  Metadata={"m": "1"}, Tagging="a=1&b=2", ACL="public-read")
    s3.put_object(Bucket=PLAIN, Key="dir/large.bin", Body=bytes(range(256)) * 40)
    s3.put_object(Bucket=PLAIN, Key="sum.txt", Body=b"checked", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=PLAIN, Key="cold.txt", Body=b"cold", StorageClass="GLACIER")
    s3.restore_object(Bucket=PLAIN, Key="cold.txt", RestoreRequest={"Days": 30000})
    s3.put_object(Bucket=PLAIN, Key="frozen.txt", Body=b"frozen", StorageClass="DEEP_ARCHIVE")
    s3.put_object(Bucket=PLAIN, Key="ia.txt", Body=b"ia", StorageClass="STANDARD_IA",
                  ServerSideEncryption="AES256", WebsiteRedirectLocation="/elsewhere",
                  CacheControl="max-age=60", ContentLanguage="de")
    s3.put_object(Bucket=PLAIN, Key=ODD_KEY, Body=b"odd")
    s3.put_object(Bucket=PLAIN, Key="empty.txt", Body=b"")
    up = s3.create_multipart_upload(Bucket=PLAIN, Key="mp.bin", ChecksumAlgorithm="CRC32",
                                    Metadata={"parts": "2"})
    parts = []
    for n, body in ((1, b"\0" * (5 * 1024 * 1024)), (2, b"tail")):
        r = s3.upload_part(Bucket=PLAIN, Key="mp.bin", UploadId=up["UploadId"], PartNumber=n,
                           Body=body, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    s3.complete_multipart_upload(Bucket=PLAIN, Key="mp.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    s3.create_bucket(Bucket=VERSIONED)
    s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=VERSIONED, Key="k", Body=b"v1", Tagging="v=1")
    s3.put_object(Bucket=VERSIONED, Key="k", Body=b"v2")
    s3.put_object(Bucket=VERSIONED, Key="gone", Body=b"x")
    s3.delete_object(Bucket=VERSIONED, Key="gone")
    s3.put_object(Bucket=VERSIONED, Key="last.txt", Body=b"written just before the kill")


def plain(value):
    """A boto3 response part as JSON (times as text), without per-request fields."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in ("ResponseMetadata", "Body")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def read_all(s3):
    """What listings and reads answer for every version of both buckets."""
    out = {}
    for bucket in (PLAIN, VERSIONED):
        got = out[bucket] = {}
        got["v2"] = plain(s3.list_objects_v2(Bucket=bucket, FetchOwner=True))
        got["v1"] = plain(s3.list_objects(Bucket=bucket))
        got["url"] = plain(s3.list_objects_v2(Bucket=bucket, EncodingType="url"))
        got["delimited"] = plain(s3.list_objects_v2(Bucket=bucket, Delimiter="/"))
        pages, token = [], None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, **kw)
            pages.append([o["Key"] for o in page.get("Contents", [])])
            token = page.get("NextContinuationToken")
            if not token:
                break
        got["pages"] = pages
        versions = s3.list_object_versions(Bucket=bucket)
        got["versions"] = plain(versions)
        got["objects"] = {}
        for v in versions.get("Versions", []):
            key, vid = v["Key"], v["VersionId"]
            one = got["objects"][f"{key} {vid}"] = {}
            one["head"] = plain(s3.head_object(Bucket=bucket, Key=key, VersionId=vid,
                                               ChecksumMode="ENABLED"))
            if v["StorageClass"] not in ("GLACIER", "DEEP_ARCHIVE") or "Restore" in one["head"] \
                    and 'ongoing-request="false"' in one["head"]["Restore"]:
                body = s3.get_object(Bucket=bucket, Key=key, VersionId=vid)["Body"].read()
                one["body"] = [len(body), hashlib.md5(body).hexdigest()]
            one["tags"] = plain(s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=vid))
            one["acl"] = plain(s3.get_object_acl(Bucket=bucket, Key=key, VersionId=vid))
    return out


def rewrite_all(s3):
    """Tags every version again with its own tags: each record is written anew."""
    for bucket in (PLAIN, VERSIONED):
        for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            key, vid = v["Key"], v["VersionId"]
            tags = s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=vid)["TagSet"]
            s3.put_object_tagging(Bucket=bucket, Key=key, VersionId=vid,
                                  Tagging={"TagSet": tags})


def compare(got, expected):
    for bucket in expected:
        for part in expected[bucket]:
            assert got[bucket][part] == expected[bucket][part], (bucket, part)
    assert got == expected


def test_records_of_the_json_layout_read_as_main_read_them(tmp_path):
    with open(EXPECTED) as f:
        expected = json.load(f)
    with tarfile.open(FIXTURE) as t:
        t.extractall(tmp_path, filter="data")
    server = Server(data_dir=str(tmp_path / "data"))
    server.start()
    try:
        s3 = make_s3(server.endpoint)
        compare(read_all(s3), expected)
        # The fixture is what it says: archived, restored, checksummed, multipart,
        # tagged, versioned and delete-marked records, and the one written last.
        objects = expected[PLAIN]["objects"]
        assert objects["cold.txt null"]["head"]["StorageClass"] == "GLACIER"
        assert 'ongoing-request="false"' in objects["cold.txt null"]["head"]["Restore"]
        assert objects["sum.txt null"]["head"]["ChecksumSHA256"]
        assert objects["mp.bin null"]["head"]["ContentLength"] == 5 * 1024 * 1024 + 4
        assert objects["small.txt null"]["tags"]["TagSet"] == [
            {"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
        assert [m["Key"] for m in expected[VERSIONED]["versions"]["DeleteMarkers"]] == ["gone"]
        assert [o["Key"] for o in expected[VERSIONED]["v2"]["Contents"]] == ["k", "last.txt"]
        assert ODD_KEY in [o["Key"] for o in expected[PLAIN]["v2"]["Contents"]]

        # Every record rewritten in the current layout reads the same, also
        # after a restart (from the log) and with nothing changed since.
        rewrite_all(s3)
        compare(read_all(s3), expected)
        server.stop()
        server.start()
        compare(read_all(make_s3(server.endpoint)), expected)
    finally:
        server.stop()


def make():
    """Writes the fixture with $NIMBUS_BIN (the release whose layout it keeps)."""
    import shutil
    import tempfile

    root = tempfile.mkdtemp()
    data = os.path.join(root, "data")
    server = Server(data_dir=data)
    server.start()
    try:
        s3 = make_s3(server.endpoint)
        write_all(s3)
        expected = read_all(s3)
    finally:
        server.kill9()
    with open(EXPECTED, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    with tarfile.open(FIXTURE, "w:gz") as t:
        t.add(data, arcname="data")
    shutil.rmtree(root)
    print(f"wrote {FIXTURE} ({os.path.getsize(FIXTURE)} bytes) and {EXPECTED}")


if __name__ == "__main__":
    if sys.argv[1:] != ["make"]:
        sys.exit(__doc__)
    make()
