"""S3 object versioning through boto3, as AWS documents and behaves: version ids,
reads of old versions, delete markers (404 / 405 with x-amz-delete-marker), permanent
deletion of a version, undelete by removing the marker, ListObjectVersions order and
pagination, suspended versioning and the "null" version, CopyObject from a version,
DeleteObjects with versions, and BucketNotEmpty while any version remains.
"""
import pytest

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)


def enable(s3, bucket):
    r = s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


def headers(e):
    return getattr(e, "value", e).response["ResponseMetadata"]["HTTPHeaders"]


def put(s3, bucket, key, body):
    r = s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    return r


# --- configuration ---------------------------------------------------------------------

def test_versioning_status_round_trip(s3, bucket):
    r = s3.get_bucket_versioning(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in r and "MFADelete" not in r
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_unversioned_put_has_no_version_id(s3, bucket):
    r = put(s3, bucket, "k", b"x")
    assert "VersionId" not in r
    assert "VersionId" not in s3.head_object(Bucket=bucket, Key="k")
    v = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(o["Key"], o["VersionId"], o["IsLatest"]) for o in v] == [("k", "null", True)]


# --- versions and delete markers ---------------------------------------------------------

def test_puts_get_distinct_versions_and_old_ones_stay_readable(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "doc", b"one")["VersionId"]
    v2 = put(s3, bucket, "doc", b"two")["VersionId"]
    v3 = put(s3, bucket, "doc", b"three")["VersionId"]
    assert len({v1, v2, v3}) == 3 and "null" not in {v1, v2, v3}
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"three"
    for vid, body in ((v1, b"one"), (v2, b"two"), (v3, b"three")):
        g = s3.get_object(Bucket=bucket, Key="doc", VersionId=vid)
        assert g["Body"].read() == body
        assert g["VersionId"] == vid
        assert g["ETag"] == f'"{md5_hex(body)}"'
        h = s3.head_object(Bucket=bucket, Key="doc", VersionId=vid)
        assert h["VersionId"] == vid and h["ContentLength"] == len(body)
    assert s3.get_object(Bucket=bucket, Key="doc")["VersionId"] == v3


def test_missing_version_id(s3, bucket):
    enable(s3, bucket)
    put(s3, bucket, "doc", b"one")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId="null")
    assert err(e) == ("NoSuchVersion", 404)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId="not-a-version")
    assert err(e) == ("InvalidArgument", 400)


def test_delete_creates_marker_and_hides_object(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "doc", b"one")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="doc")
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    assert marker and marker not in (v1, "null")

    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc")
    assert err(e) == ("NoSuchKey", 404)
    assert headers(e).get("x-amz-delete-marker") == "true"
    assert headers(e).get("x-amz-version-id") == marker

    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="doc")
    assert status(e) == 404
    assert headers(e).get("x-amz-delete-marker") == "true"

    # The old version is still there by id; the key is gone from ordinary listings.
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["Body"].read() == b"one"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_get_of_delete_marker_version_is_method_not_allowed(s3, bucket):
    enable(s3, bucket)
    put(s3, bucket, "doc", b"one")
    marker = s3.delete_object(Bucket=bucket, Key="doc")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert err(e) == ("MethodNotAllowed", 405)
    assert headers(e).get("x-amz-delete-marker") == "true"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert status(e) == 405
    assert headers(e).get("x-amz-delete-marker") == "true"


def test_delete_specific_version_is_permanent(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "doc", b"one")["VersionId"]
    v2 = put(s3, bucket, "doc", b"two")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert d["VersionId"] == v2
    assert "DeleteMarker" not in d
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert err(e) == ("NoSuchVersion", 404)
    # The previous version becomes current again; no marker was created.
    g = s3.get_object(Bucket=bucket, Key="doc")
    assert g["Body"].read() == b"one" and g["VersionId"] == v1
    lv = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in lv["Versions"]] == [(v1, True)]
    assert "DeleteMarkers" not in lv


def test_deleting_the_delete_marker_restores_the_object(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "doc", b"one")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="doc")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert d["DeleteMarker"] is True
    assert d["VersionId"] == marker
    g = s3.get_object(Bucket=bucket, Key="doc")
    assert g["Body"].read() == b"one" and g["VersionId"] == v1
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket)


# --- ListObjectVersions ----------------------------------------------------------------

def test_list_object_versions_newest_first_with_markers(s3, bucket):
    enable(s3, bucket)
    a1 = put(s3, bucket, "a", b"a1")["VersionId"]
    a2 = put(s3, bucket, "a", b"a22")["VersionId"]
    am = s3.delete_object(Bucket=bucket, Key="a")["VersionId"]
    b1 = put(s3, bucket, "b", b"b1")["VersionId"]
    r = s3.list_object_versions(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["IsTruncated"] is False
    assert r["Name"] == bucket
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r["Versions"]] == [
        ("a", a2, False), ("a", a1, False), ("b", b1, True)]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [
        ("a", am, True)]
    by_id = {v["VersionId"]: v for v in r["Versions"]}
    assert by_id[a2]["Size"] == 3 and by_id[a2]["ETag"] == f'"{md5_hex(b"a22")}"'
    assert by_id[a1]["StorageClass"] == "STANDARD"
    assert "Owner" in r["DeleteMarkers"][0] and "LastModified" in r["DeleteMarkers"][0]
    assert "Size" not in r["DeleteMarkers"][0] and "ETag" not in r["DeleteMarkers"][0]

    r = s3.list_object_versions(Bucket=bucket, Prefix="b")
    assert [v["VersionId"] for v in r["Versions"]] == [b1] and "DeleteMarkers" not in r


def test_list_object_versions_pagination(s3, bucket):
    enable(s3, bucket)
    a1 = put(s3, bucket, "a", b"1")["VersionId"]
    a2 = put(s3, bucket, "a", b"2")["VersionId"]
    am = s3.delete_object(Bucket=bucket, Key="a")["VersionId"]
    b1 = put(s3, bucket, "b", b"1")["VersionId"]
    b2 = put(s3, bucket, "b", b"2")["VersionId"]
    # Newest first per key: a: marker, a2, a1; b: b2, b1.
    expected = [("a", am), ("a", a2), ("a", a1), ("b", b2), ("b", b1)]

    p1 = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert p1["IsTruncated"] is True and p1["MaxKeys"] == 2
    got1 = sorted([(m["Key"], m["VersionId"]) for m in p1.get("DeleteMarkers", [])]
                  + [(v["Key"], v["VersionId"]) for v in p1.get("Versions", [])],
                  key=expected.index)
    assert got1 == expected[:2]
    assert (p1["NextKeyMarker"], p1["NextVersionIdMarker"]) == ("a", a2)

    p2 = s3.list_object_versions(Bucket=bucket, MaxKeys=2, KeyMarker=p1["NextKeyMarker"],
                                 VersionIdMarker=p1["NextVersionIdMarker"])
    assert p2["IsTruncated"] is True
    assert (p2["KeyMarker"], p2["VersionIdMarker"]) == ("a", a2)
    assert [(v["Key"], v["VersionId"]) for v in p2["Versions"]] == expected[2:4]
    assert "DeleteMarkers" not in p2
    assert (p2["NextKeyMarker"], p2["NextVersionIdMarker"]) == ("b", b2)

    p3 = s3.list_object_versions(Bucket=bucket, MaxKeys=2, KeyMarker="b", VersionIdMarker=b2)
    assert p3["IsTruncated"] is False
    assert [(v["Key"], v["VersionId"]) for v in p3["Versions"]] == expected[4:]
    assert "NextKeyMarker" not in p3 and "NextVersionIdMarker" not in p3

    # KeyMarker alone starts after every version of that key.
    r = s3.list_object_versions(Bucket=bucket, KeyMarker="a")
    assert [(v["Key"], v["VersionId"]) for v in r["Versions"]] == expected[3:]

    # The paginator walks the same sequence.
    seen = []
    for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}):
        seen += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert sorted(seen, key=expected.index) == expected and len(seen) == 5


# --- suspended versioning ----------------------------------------------------------------

def test_suspended_puts_write_the_null_version(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "doc", b"one")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    # AWS's PutObject answer on a suspended bucket carries no x-amz-version-id (the
    # "Versioning suspended" sample of the PutObject reference); the write is "null".
    r = put(s3, bucket, "doc", b"two")
    assert "VersionId" not in r
    r = put(s3, bucket, "doc", b"three")
    assert "VersionId" not in r
    g = s3.get_object(Bucket=bucket, Key="doc")
    assert g["Body"].read() == b"three" and g["VersionId"] == "null"
    # The second null write replaced the first; the versioned one is kept.
    v = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(o["VersionId"], o["IsLatest"], o["Size"]) for o in v] == [("null", True, 5), (v1, False, 3)]
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId="null")["Body"].read() == b"three"
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["Body"].read() == b"one"


def test_suspended_delete_writes_null_marker(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "doc", b"one")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    put(s3, bucket, "doc", b"two")  # the null version
    d = s3.delete_object(Bucket=bucket, Key="doc")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    r = s3.list_object_versions(Bucket=bucket)
    # The null object version was replaced by the null delete marker.
    assert [(o["VersionId"], o["IsLatest"]) for o in r["Versions"]] == [(v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [("null", True)]


# --- copy, batch delete, bucket deletion ---------------------------------------------------

def test_copy_object_from_a_specific_version(s3, bucket):
    enable(s3, bucket)
    v1 = put(s3, bucket, "src", b"old body")["VersionId"]
    put(s3, bucket, "src", b"new body")
    c = s3.copy_object(Bucket=bucket, Key="dst",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert c["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert c["CopySourceVersionId"] == v1
    assert c["VersionId"] and c["VersionId"] != v1
    assert c["CopyObjectResult"]["ETag"] == f'"{md5_hex(b"old body")}"'
    g = s3.get_object(Bucket=bucket, Key="dst")
    assert g["Body"].read() == b"old body" and g["VersionId"] == c["VersionId"]

    # Without a VersionId the current version is copied and reported.
    cur = s3.head_object(Bucket=bucket, Key="src")["VersionId"]
    c = s3.copy_object(Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "src"})
    assert c["CopySourceVersionId"] == cur

    # A delete marker cannot be a copy source.
    marker = s3.delete_object(Bucket=bucket, Key="src")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst3", CopySource={"Bucket": bucket, "Key": "src"})
    assert err(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst3",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": marker})
    assert err(e) == ("InvalidRequest", 400)


def test_delete_objects_with_version_ids(s3, bucket):
    enable(s3, bucket)
    a1 = put(s3, bucket, "a", b"1")["VersionId"]
    a2 = put(s3, bucket, "a", b"2")["VersionId"]
    b1 = put(s3, bucket, "b", b"1")["VersionId"]
    bm = s3.delete_object(Bucket=bucket, Key="b")["VersionId"]
    put(s3, bucket, "c", b"1")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "VersionId": a1},
        {"Key": "b", "VersionId": bm},
        {"Key": "c"},
    ]})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Errors" not in r
    deleted = {d["Key"]: d for d in r["Deleted"]}
    assert deleted["a"] == {"Key": "a", "VersionId": a1}
    assert deleted["b"]["VersionId"] == bm
    assert deleted["b"]["DeleteMarker"] is True
    assert deleted["b"]["DeleteMarkerVersionId"] == bm
    assert deleted["c"]["DeleteMarker"] is True
    cm = deleted["c"]["DeleteMarkerVersionId"]
    assert cm and "VersionId" not in deleted["c"]

    lv = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in lv["Versions"]] == [
        ("a", a2, True), ("b", b1, True), ("c", lv["Versions"][2]["VersionId"], False)]
    assert [(m["Key"], m["VersionId"]) for m in lv["DeleteMarkers"]] == [("c", cm)]


def test_bucket_with_versions_is_not_deletable(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    try:
        enable(s3, name)
        v1 = put(s3, name, "doc", b"one")["VersionId"]
        marker = s3.delete_object(Bucket=name, Key="doc")["VersionId"]
        assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
        with pytest.raises(ClientError) as e:
            s3.delete_bucket(Bucket=name)
        assert err(e) == ("BucketNotEmpty", 409)
        s3.delete_object(Bucket=name, Key="doc", VersionId=v1)
        with pytest.raises(ClientError) as e:  # the delete marker alone still counts
            s3.delete_bucket(Bucket=name)
        assert err(e) == ("BucketNotEmpty", 409)
        s3.delete_object(Bucket=name, Key="doc", VersionId=marker)
        assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    finally:
        empty_and_delete(s3, name)
