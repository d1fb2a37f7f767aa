"""S3 durability under kill -9: every acknowledged PUT / CompleteMultipartUpload
survives with exactly its bytes, no key ever shows torn or partial content, deletes
stay deleted, an upload cut off by the crash leaves nothing, objects survive a clean
restart, and no stray body files accumulate in the data directory.

Each test runs its own `nimbus serve` on a fixed data directory (not the shared
ephemeral session server) so it can be killed and started again.
"""
import hashlib
import http.client
import os
import random
import threading
import time
import uuid

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import Server
from s3_helpers import make_s3, md5_hex

KiB = 1024
MiB = 1024 * KiB
INLINE_MAX = 4096  # nimbus keeps bodies up to this size with their record, not in a file


@pytest.fixture
def server_dir(tmp_path):
    s = Server(data_dir=str(tmp_path / "data"))
    s.start()
    yield s
    s.stop()


def s3_for(server):
    # A fresh client per server start: pooled connections die with the process.
    return make_s3(server.endpoint, connect_timeout=5, read_timeout=30)


def body_of(size, tag):
    """A distinct body of `size` bytes, cheap to make: a unique header over random filler."""
    head = f"{tag}:{uuid.uuid4().hex}:".encode()
    filler = os.urandom(min(size, 64 * KiB))
    out = (head + filler * (size // len(filler) + 1))[:size]
    return out


def object_files(data_dir):
    root = os.path.join(data_dir, "s3", "objects")
    n = 0
    for _dirpath, _dirs, files in os.walk(root):
        n += len(files)
    return n


def settled_files(data_dir, wanted, timeout=20):
    """Body files once the sweep after a start has removed what no record names
    (it runs in the background: the start does not wait for it)."""
    deadline = time.time() + timeout
    while object_files(data_dir) != wanted and time.time() < deadline:
        time.sleep(0.05)
    return object_files(data_dir)


def get_md5(s3, bucket, key):
    return md5_hex(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def listed_keys(s3, bucket):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = o
    return out


def files_needed(s3, bucket):
    """Body files the live objects and pending uploads of `bucket` should own."""
    n = 0
    for o in listed_keys(s3, bucket).values():
        etag = o["ETag"].strip('"')
        if "-" in etag:
            n += int(etag.split("-")[1])   # multipart: one file per part
        elif o["Size"] > INLINE_MAX:
            n += 1
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        n += len(s3.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
    return n


# --- kill -9 under concurrent load ---------------------------------------------------------------

def test_acknowledged_puts_survive_kill9_under_load(server_dir):
    s3 = s3_for(server_dir)
    bucket = "crash-load"
    s3.create_bucket(Bucket=bucket)

    lock = threading.Lock()
    attempted = {}   # key -> md5s of every body ever sent for it
    acked = {}       # key -> md5 of the last acknowledged write
    after_ack = {}   # key -> md5s sent after the last acknowledgement (may or may not have landed)
    stop = threading.Event()
    counts = {"small": 0, "large": 0, "multipart": 0}

    def note_attempt(key, md5):
        with lock:
            attempted.setdefault(key, set()).add(md5)
            after_ack.setdefault(key, set()).add(md5)

    def note_ack(key, md5, kind):
        with lock:
            acked[key] = md5
            after_ack[key] = set()
            counts[kind] += 1

    def writer(t):
        c = s3_for(server_dir)
        rnd = random.Random(t)
        i = 0
        while not stop.is_set():
            roll = rnd.random()
            # Every thread owns its keys; one hot key per thread is overwritten again and again.
            key = f"t{t}/hot" if rnd.random() < 0.2 else f"t{t}/k{i}"
            try:
                if roll < 0.03 and t < 4:
                    parts = [body_of(5 * MiB, f"{key}#1"), body_of(rnd.randint(1, 2 * MiB), f"{key}#2")]
                    whole = b"".join(parts)
                    md5 = md5_hex(whole)
                    note_attempt(key, md5)
                    uid = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                    done = []
                    for n, p in enumerate(parts, 1):
                        r = c.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=p)
                        done.append({"PartNumber": n, "ETag": r["ETag"]})
                    c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                                MultipartUpload={"Parts": done})
                    note_ack(key, md5, "multipart")
                elif roll < 0.15:
                    body = body_of(rnd.randint(1 * MiB, 8 * MiB), key)
                    md5 = md5_hex(body)
                    note_attempt(key, md5)
                    r = c.put_object(Bucket=bucket, Key=key, Body=body)
                    assert r["ETag"] == f'"{md5}"'
                    note_ack(key, md5, "large")
                else:
                    body = body_of(1 * KiB, key)
                    md5 = md5_hex(body)
                    note_attempt(key, md5)
                    r = c.put_object(Bucket=bucket, Key=key, Body=body)
                    assert r["ETag"] == f'"{md5}"'
                    note_ack(key, md5, "small")
            except (ClientError, BotoCoreError, OSError):
                return  # the server died under us: this write was not acknowledged
            i += 1

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(16)]
    for th in threads:
        th.start()
    time.sleep(3.0)
    server_dir.kill9()
    stop.set()
    for th in threads:
        th.join(timeout=30)
    assert counts["small"] > 100 and counts["large"] > 5, counts

    server_dir.start()
    s3 = s3_for(server_dir)

    # Every acknowledged key is there with the bytes of its last acknowledged write (or of
    # the write that was in flight after it, if that one landed before the crash).
    lost, wrong = [], []
    for key, md5 in acked.items():
        try:
            got = get_md5(s3, bucket, key)
        except ClientError as e:
            lost.append((key, e.response["Error"]["Code"]))
            continue
        if got != md5 and got not in after_ack[key]:
            wrong.append(key)
    assert not lost, f"{len(lost)} acknowledged objects lost of {len(acked)}: {lost[:5]}"
    assert not wrong, f"{len(wrong)} objects with other bytes than acknowledged: {wrong[:5]}"

    # Nothing listed is torn: each listed key reads back as one of the bodies sent for it,
    # with the size and ETag the listing claims.
    listed = listed_keys(s3, bucket)
    assert set(acked) <= set(listed)
    torn = []
    for key, o in listed.items():
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        md5 = md5_hex(data)
        if key not in attempted or md5 not in attempted[key] or len(data) != o["Size"]:
            torn.append(key)
        elif "-" not in o["ETag"] and o["ETag"] != f'"{md5}"':
            torn.append(key)
    assert not torn, f"torn or unknown content for {torn[:5]}"

    # No stray body files: exactly the files the live objects (and pending uploads) own.
    needed = files_needed(s3, bucket)
    assert settled_files(server_dir.data_dir, needed) == needed
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    assert object_files(server_dir.data_dir) == files_needed(s3, bucket)


# --- clean restart, deletes, interrupted upload ---------------------------------------------------

def test_objects_survive_clean_restart(server_dir):
    s3 = s3_for(server_dir)
    s3.create_bucket(Bucket="clean")
    bodies = {"small": b"s" * 100, "edge": b"e" * INLINE_MAX, "file": body_of(INLINE_MAX + 1, "f"),
              "big": body_of(3 * MiB, "b")}
    for k, b in bodies.items():
        s3.put_object(Bucket="clean", Key=k, Body=b, ContentType="text/x-test", Metadata={"m": k})
    parts = [body_of(5 * MiB, "p1"), b"tail"]
    uid = s3.create_multipart_upload(Bucket="clean", Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket="clean", Key="mp", UploadId=uid, PartNumber=n, Body=p)["ETag"]
             for n, p in enumerate(parts, 1)]
    mp = s3.complete_multipart_upload(Bucket="clean", Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    bodies["mp"] = b"".join(parts)

    server_dir.stop()
    server_dir.start()
    s3 = s3_for(server_dir)
    for k, b in bodies.items():
        g = s3.get_object(Bucket="clean", Key=k)
        assert g["Body"].read() == b, k
        if k != "mp":
            assert g["ETag"] == f'"{md5_hex(b)}"'
            assert g["ContentType"] == "text/x-test" and g["Metadata"] == {"m": k}
    assert s3.head_object(Bucket="clean", Key="mp")["ETag"] == mp["ETag"]
    # small, edge: inline; file, big: one file each; mp: one per part.
    assert object_files(server_dir.data_dir) == files_needed(s3, "clean") == 4


def test_deleted_objects_stay_deleted_after_kill9(server_dir):
    s3 = s3_for(server_dir)
    s3.create_bucket(Bucket="deletes")
    for i in range(20):
        s3.put_object(Bucket="deletes", Key=f"k{i}", Body=body_of(10 * KiB if i % 2 else 100, f"k{i}"))
    for i in range(0, 20, 3):
        s3.delete_object(Bucket="deletes", Key=f"k{i}")
    s3.delete_objects(Bucket="deletes", Delete={"Objects": [{"Key": "k1"}, {"Key": "k2"}]})
    gone = {f"k{i}" for i in range(0, 20, 3)} | {"k1", "k2"}
    server_dir.kill9()
    server_dir.start()
    s3 = s3_for(server_dir)
    assert set(listed_keys(s3, "deletes")) == {f"k{i}" for i in range(20)} - gone
    for k in gone:
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="deletes", Key=k)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    needed = files_needed(s3, "deletes")
    assert settled_files(server_dir.data_dir, needed) == needed


def test_upload_in_progress_at_kill_leaves_no_object(server_dir):
    s3 = s3_for(server_dir)
    s3.create_bucket(Bucket="partial")
    s3.put_object(Bucket="partial", Key="over", Body=b"old")
    total = 8 * MiB
    conns = []
    for key in ("fresh", "over"):
        conn = http.client.HTTPConnection("127.0.0.1", server_dir.port, timeout=10)
        conn.putrequest("PUT", f"/partial/{key}")
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        conn.putheader("Host", f"127.0.0.1:{server_dir.port}")
        conn.putheader("Content-Length", str(total))
        conn.putheader("x-amz-date", amz_date)
        conn.putheader("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        conn.putheader("Authorization",
                       f"AWS4-HMAC-SHA256 Credential=test/{amz_date[:8]}/us-east-1/s3/aws4_request, "
                       f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={'0' * 64}")
        conn.endheaders()
        conn.send(os.urandom(3 * MiB))  # well past the inline size, far from done
        conns.append(conn)
    # And a multipart upload whose completion never came.
    uid = s3.create_multipart_upload(Bucket="partial", Key="mp")["UploadId"]
    s3.upload_part(Bucket="partial", Key="mp", UploadId=uid, PartNumber=1, Body=body_of(5 * MiB, "p"))
    time.sleep(0.3)
    server_dir.kill9()
    for c in conns:
        c.close()

    server_dir.start()
    s3 = s3_for(server_dir)
    assert set(listed_keys(s3, "partial")) == {"over"}
    assert s3.get_object(Bucket="partial", Key="over")["Body"].read() == b"old"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="partial", Key="fresh")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    # The acknowledged part of the unfinished multipart upload is kept with its upload.
    ups = s3.list_multipart_uploads(Bucket="partial").get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in ups] == [("mp", uid)]
    # The cut-off bodies left no file behind.
    assert settled_files(server_dir.data_dir, 1) == files_needed(s3, "partial") == 1
    tmp = os.path.join(server_dir.data_dir, "s3", "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
