"""S3 multipart uploads through boto3 and the aws CLI: the whole lifecycle with
the documented multipart ETag, part-size and part-list validation, NoSuchUpload,
abort, UploadPartCopy with ranges, and `aws s3 cp` / `aws s3 sync` end to end.
"""
import hashlib
import os

import pytest

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, s3_in, bucket and helpers)

MiB = 1024 * 1024
PART = 5 * MiB  # the minimum size of every part but the last


def multipart_etag(parts):
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def upload_parts(s3, bucket, key, upload_id, parts):
    out = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert r["ETag"] == f'"{md5_hex(data)}"'
        out.append({"PartNumber": n, "ETag": r["ETag"]})
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


# --- lifecycle -----------------------------------------------------------------------

def test_multipart_lifecycle(s3, bucket):
    key = "big/object.bin"
    parts = [os.urandom(PART), os.urandom(PART), b"tail" * 256]
    c = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test",
                                   Metadata={"origin": "multipart"})
    assert c["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (c["Bucket"], c["Key"]) == (bucket, key)
    upload_id = c["UploadId"]
    assert upload_id

    done = upload_parts(s3, bucket, key, upload_id, parts)

    lp = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert lp["UploadId"] == upload_id and lp["Key"] == key
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in lp["Parts"]] == [
        (d["PartNumber"], len(data), d["ETag"]) for d, data in zip(done, parts)]
    assert lp["IsTruncated"] is False

    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]

    # Not visible as an object until completed.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert status(e) == 404

    r = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["ETag"] == multipart_etag(parts)
    assert (r["Bucket"], r["Key"]) == (bucket, key)
    assert r["Location"].endswith(f"/{bucket}/{key}") or r["Location"].endswith(f"/{key}")

    g = s3.get_object(Bucket=bucket, Key=key)
    assert g["Body"].read() == b"".join(parts)
    assert g["ETag"] == multipart_etag(parts)
    assert g["ContentLength"] == sum(map(len, parts))
    assert g["ContentType"] == "application/x-test"
    assert g["Metadata"] == {"origin": "multipart"}

    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert err(e) == ("NoSuchUpload", 404)


@moto_gap("GetObject ignores PartNumber")
def test_get_part_number(s3, bucket):
    parts = [os.urandom(PART), b"last part"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="p")["UploadId"]
    done = upload_parts(s3, bucket, "p", upload_id, parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="p", UploadId=upload_id, MultipartUpload={"Parts": done})
    g = s3.get_object(Bucket=bucket, Key="p", PartNumber=2)
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert g["PartsCount"] == 2
    assert g["Body"].read() == b"last part"
    assert g["ContentRange"] == f"bytes {PART}-{PART + 8}/{PART + 9}"


def test_single_small_part_is_fine(s3, bucket):
    # Only non-last parts have a minimum size; a one-part upload may be tiny.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="tiny")["UploadId"]
    done = upload_parts(s3, bucket, "tiny", upload_id, [b"tiny"])
    r = s3.complete_multipart_upload(Bucket=bucket, Key="tiny", UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
    assert r["ETag"] == multipart_etag([b"tiny"])
    assert r["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=bucket, Key="tiny")["Body"].read() == b"tiny"


def test_reuploading_a_part_replaces_it(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="r")["UploadId"]
    upload_parts(s3, bucket, "r", upload_id, [b"old"])
    done = upload_parts(s3, bucket, "r", upload_id, [b"new!"])
    lp = s3.list_parts(Bucket=bucket, Key="r", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in lp] == [(1, 4)]
    s3.complete_multipart_upload(Bucket=bucket, Key="r", UploadId=upload_id, MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket=bucket, Key="r")["Body"].read() == b"new!"


# --- validation ----------------------------------------------------------------------

def test_part_too_small(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    done = upload_parts(s3, bucket, "small", upload_id, [b"a" * 1024, b"b" * 1024])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
    assert err(e) == ("EntityTooSmall", 400)
    # The upload survives a failed completion.
    assert len(s3.list_parts(Bucket=bucket, Key="small", UploadId=upload_id)["Parts"]) == 2


def test_invalid_part(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="ip")["UploadId"]
    done = upload_parts(s3, bucket, "ip", upload_id, [b"only part"])
    for parts in ([{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}],   # wrong ETag
                  [{"PartNumber": 2, "ETag": done[0]["ETag"]}]):                        # never uploaded
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=bucket, Key="ip", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
        assert err(e) == ("InvalidPart", 400)


@moto_gap("accepts parts listed out of order")
def test_invalid_part_order(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="order")["UploadId"]
    done = upload_parts(s3, bucket, "order", upload_id, [os.urandom(PART), os.urandom(PART)])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="order", UploadId=upload_id,
                                     MultipartUpload={"Parts": list(reversed(done))})
    assert err(e) == ("InvalidPartOrder", 400)


def test_no_such_upload(s3, bucket):
    bogus = "bogus-upload-id"
    calls = [
        lambda: s3.list_parts(Bucket=bucket, Key="k", UploadId=bogus),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=bogus),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert err(e) == ("NoSuchUpload", 404)


@moto_gap("UploadPart / CompleteMultipartUpload with an unknown upload id are a 500")
def test_upload_and_complete_no_such_upload(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="k", UploadId="bogus-upload-id", PartNumber=1, Body=b"x")
    assert err(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId="bogus-upload-id",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    assert err(e) == ("NoSuchUpload", 404)


def test_abort(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="ab")["UploadId"]
    upload_parts(s3, bucket, "ab", upload_id, [b"data"])
    r = s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=upload_id)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="ab", UploadId=upload_id)
    assert err(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="ab")
    assert status(e) == 404


def test_list_multipart_uploads_prefix(s3, bucket):
    ids = {k: s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]
           for k in ("logs/a", "logs/b", "other")}
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix="logs/")
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == [("logs/a", ids["logs/a"]), ("logs/b", ids["logs/b"])]
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 3


# --- UploadPartCopy -------------------------------------------------------------------------

def test_upload_part_copy_with_ranges(s3, bucket):
    src = os.urandom(PART + 1000)
    mid = os.urandom(PART)
    s3.put_object(Bucket=bucket, Key="source", Body=src)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]

    def copy_part(n, lo, hi):
        r = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=n,
                                CopySource={"Bucket": bucket, "Key": "source"},
                                CopySourceRange=f"bytes={lo}-{hi}")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert r["CopyPartResult"]["ETag"] == f'"{md5_hex(src[lo:hi + 1])}"'
        return {"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]}

    # Copied parts and a plain part mixed: src[:5 MiB] + mid + src[5 MiB:].
    done = [copy_part(1, 0, PART - 1)]
    r = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=2, Body=mid)
    done.append({"PartNumber": 2, "ETag": r["ETag"]})
    done.append(copy_part(3, PART, len(src) - 1))
    sizes = [p["Size"] for p in s3.list_parts(Bucket=bucket, Key="assembled", UploadId=upload_id)["Parts"]]
    assert sizes == [PART, PART, 1000]

    r = s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
    assert r["ETag"] == multipart_etag([src[:PART], mid, src[PART:]])
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == src[:PART] + mid + src[PART:]


@moto_gap("accepts a copy range beyond the source object")
def test_upload_part_copy_bad_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="source", Body=b"0123456789")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="x")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="x", UploadId=upload_id, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange="bytes=5-100")
    assert err(e) == ("InvalidRange", 416) or err(e) == ("InvalidArgument", 400)


# --- the aws CLI ------------------------------------------------------------------------------

def test_cli_cp_100_mib_both_ways(s3, bucket, aws, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MiB))
    aws("s3", "cp", str(src), f"s3://{bucket}/dir/big.bin")

    h = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert h["ContentLength"] == 100 * MiB
    # The CLI uploads in 8 MiB parts: 13 of them.
    assert h["ETag"].endswith('-13"')

    dst = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{bucket}/dir/big.bin", str(dst))
    assert os.path.getsize(dst) == 100 * MiB
    assert sha256_file(dst) == sha256_file(src)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def bucket_keys(s3, bucket, prefix=""):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def local_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_cli_sync_with_filters_and_delete(s3, bucket, aws, tmp_path):
    up = tmp_path / "up"
    write(up / "a.gz", b"a" * 100)
    write(up / "b.txt", b"b")
    write(up / "sub" / "c.gz", b"c" * 50)
    write(up / "sub" / "d.log", b"d")
    url = f"s3://{bucket}/data"
    gz_only = ("--exclude", "*", "--include", "*.gz")

    # Upload: only .gz files land.
    aws("s3", "sync", str(up), url, *gz_only)
    assert bucket_keys(s3, bucket) == ["data/a.gz", "data/sub/c.gz"]
    assert s3.get_object(Bucket=bucket, Key="data/sub/c.gz")["Body"].read() == b"c" * 50

    # --delete removes remote .gz files gone locally, but not excluded ones.
    s3.put_object(Bucket=bucket, Key="data/remote.txt", Body=b"r")
    (up / "a.gz").unlink()
    aws("s3", "sync", str(up), url, "--delete", *gz_only)
    assert bucket_keys(s3, bucket) == ["data/remote.txt", "data/sub/c.gz"]

    # Download: only .gz files arrive; --delete removes local stale .gz files only.
    s3.put_object(Bucket=bucket, Key="data/new.gz", Body=b"n" * 10)
    down = tmp_path / "down"
    write(down / "stale.gz", b"s")
    write(down / "keep.txt", b"k")
    aws("s3", "sync", url, str(down), "--delete", *gz_only)
    assert local_files(down) == ["keep.txt", "new.gz", "sub/c.gz"]
    assert (down / "new.gz").read_bytes() == b"n" * 10
    assert (down / "sub" / "c.gz").read_bytes() == b"c" * 50

    # A second sync has nothing to do.
    out = aws("s3", "sync", url, str(down), "--delete", *gz_only)
    assert out == ""


def test_copy_of_a_multipart_object_is_one_object(s3, bucket):
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    done = upload_parts(s3, bucket, "mp", up, parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": done})
    r = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
    whole = b"".join(parts)
    # S3 stores the copy as a single-part object: its ETag is the MD5 of the body.
    assert r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(whole).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="copy")
    assert "PartsCount" not in got
    assert got["Body"].read() == whole


def test_full_object_crc32_checksum(s3, bucket):
    import base64
    import zlib
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(777)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="crc", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    assert up["ChecksumType"] == "FULL_OBJECT"
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key="crc", UploadId=up["UploadId"], PartNumber=n,
                           Body=data, ChecksumAlgorithm="CRC32")
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    r = s3.complete_multipart_upload(Bucket=bucket, Key="crc", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": done})
    whole = zlib.crc32(b"".join(parts)).to_bytes(4, "big")
    assert r["ChecksumCRC32"] == base64.b64encode(whole).decode()
    assert r["ChecksumType"] == "FULL_OBJECT"
