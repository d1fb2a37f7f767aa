"""S3 listings through boto3: ListObjects (v1) and ListObjectsV2 with prefixes,
delimiters, common prefixes, MaxKeys, markers, continuation tokens, StartAfter,
EncodingType=url; paginators over 2,500 keys; ListObjectVersions.
"""
import concurrent.futures
import urllib.parse

import pytest

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, s3_in, bucket and helpers)

TREE = ["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "d/4.txt", "e.txt", "f/5.txt"]


@pytest.fixture(scope="module")
def tree(s3):
    name = bucket_name("tree")
    s3.create_bucket(Bucket=name)
    for k in TREE:
        s3.put_object(Bucket=name, Key=k, Body=k.encode())
    yield name
    empty_and_delete(s3, name)


def keys(resp):
    return [o["Key"] for o in resp.get("Contents", [])]


def prefixes(resp):
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


# --- ListObjectsV2 ---------------------------------------------------------------------

def test_v2_all(s3, tree):
    r = s3.list_objects_v2(Bucket=tree)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["Name"] == tree
    assert keys(r) == TREE  # UTF-8 binary order
    assert r["KeyCount"] == len(TREE)
    assert r["MaxKeys"] == 1000
    assert r["IsTruncated"] is False
    assert "NextContinuationToken" not in r
    first = r["Contents"][0]
    assert first["Size"] == len("a.txt")
    assert first["ETag"] == f'"{md5_hex(b"a.txt")}"'
    assert first["StorageClass"] == "STANDARD"
    assert "Owner" not in first  # v2 omits the owner unless FetchOwner=true


def test_v2_fetch_owner(s3, tree):
    r = s3.list_objects_v2(Bucket=tree, FetchOwner=True)
    assert all(o["Owner"]["ID"] for o in r["Contents"])


def test_v2_prefix(s3, tree):
    r = s3.list_objects_v2(Bucket=tree, Prefix="b/")
    assert keys(r) == ["b/1.txt", "b/2.txt", "b/c/3.txt"]
    assert r["Prefix"] == "b/"
    assert r["KeyCount"] == 3
    r = s3.list_objects_v2(Bucket=tree, Prefix="zzz")
    assert keys(r) == [] and r["KeyCount"] == 0 and r["IsTruncated"] is False


def test_v2_delimiter(s3, tree):
    r = s3.list_objects_v2(Bucket=tree, Delimiter="/")
    assert keys(r) == ["a.txt", "e.txt"]
    assert prefixes(r) == ["b/", "d/", "f/"]
    assert r["Delimiter"] == "/"
    assert r["KeyCount"] == 5  # keys plus common prefixes

    r = s3.list_objects_v2(Bucket=tree, Prefix="b/", Delimiter="/")
    assert keys(r) == ["b/1.txt", "b/2.txt"]
    assert prefixes(r) == ["b/c/"]
    assert r["KeyCount"] == 3

    # Any string can be a delimiter.
    r = s3.list_objects_v2(Bucket=tree, Delimiter=".")
    assert keys(r) == []
    assert prefixes(r) == ["a.", "b/1.", "b/2.", "b/c/3.", "d/4.", "e.", "f/5."]


def test_v2_max_keys_and_continuation(s3, tree):
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=tree, MaxKeys=3, **kw)
        pages += 1
        assert r["MaxKeys"] == 3
        assert r["KeyCount"] == len(keys(r)) <= 3
        seen += keys(r)
        if not r["IsTruncated"]:
            assert "NextContinuationToken" not in r
            break
        token = r["NextContinuationToken"]
    assert seen == TREE
    assert pages == 3


@moto_gap("does not echo ContinuationToken")
def test_v2_continuation_token_echoed(s3, tree):
    token = s3.list_objects_v2(Bucket=tree, MaxKeys=1)["NextContinuationToken"]
    r = s3.list_objects_v2(Bucket=tree, MaxKeys=1, ContinuationToken=token)
    assert r["ContinuationToken"] == token
    assert keys(r) == ["b/1.txt"]


def test_v2_max_keys_counts_common_prefixes(s3, tree):
    r = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=2)
    assert keys(r) == ["a.txt"] and prefixes(r) == ["b/"]
    assert r["KeyCount"] == 2
    assert r["IsTruncated"] is True
    r = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=2,
                           ContinuationToken=r["NextContinuationToken"])
    assert prefixes(r) == ["d/"] and keys(r) == ["e.txt"]
    r = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=2,
                           ContinuationToken=r["NextContinuationToken"])
    assert prefixes(r) == ["f/"] and keys(r) == []
    assert r["IsTruncated"] is False


def test_v2_start_after(s3, tree):
    r = s3.list_objects_v2(Bucket=tree, StartAfter="b/2.txt")
    assert keys(r) == ["b/c/3.txt", "d/4.txt", "e.txt", "f/5.txt"]
    assert r["StartAfter"] == "b/2.txt"
    # StartAfter need not be an existing key.
    assert keys(s3.list_objects_v2(Bucket=tree, StartAfter="c")) == ["d/4.txt", "e.txt", "f/5.txt"]
    assert keys(s3.list_objects_v2(Bucket=tree, StartAfter="zzz")) == []


def test_v2_max_keys_zero(s3, tree):
    r = s3.list_objects_v2(Bucket=tree, MaxKeys=0)
    assert keys(r) == [] and r["KeyCount"] == 0 and r["MaxKeys"] == 0


# --- ListObjects (v1) -----------------------------------------------------------------

def test_v1_all_and_prefix(s3, tree):
    r = s3.list_objects(Bucket=tree)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert keys(r) == TREE
    assert r["IsTruncated"] is False
    assert r["MaxKeys"] == 1000
    assert r["Contents"][0]["Owner"]["ID"]  # v1 always includes the owner
    assert keys(s3.list_objects(Bucket=tree, Prefix="b/c")) == ["b/c/3.txt"]


def test_v1_delimiter(s3, tree):
    r = s3.list_objects(Bucket=tree, Delimiter="/")
    assert keys(r) == ["a.txt", "e.txt"]
    assert prefixes(r) == ["b/", "d/", "f/"]


def test_v1_marker_pagination(s3, tree):
    seen, marker = [], ""
    while True:
        r = s3.list_objects(Bucket=tree, MaxKeys=2, Marker=marker)
        page = keys(r)
        assert len(page) <= 2
        seen += page
        if not r["IsTruncated"]:
            break
        marker = r.get("NextMarker") or page[-1]  # NextMarker only comes with a delimiter
    assert seen == TREE
    assert keys(s3.list_objects(Bucket=tree, Marker="b/2.txt")) == ["b/c/3.txt", "d/4.txt", "e.txt", "f/5.txt"]


@moto_gap("v1 sends an opaque NextMarker without a delimiter and ignores MaxKeys with one")
def test_v1_next_marker(s3, tree):
    # Without a delimiter S3 sends no NextMarker (the client uses the last key) ...
    r = s3.list_objects(Bucket=tree, MaxKeys=2)
    assert r["IsTruncated"] is True and "NextMarker" not in r
    # ... with one, NextMarker is the last key or common prefix returned.
    r = s3.list_objects(Bucket=tree, MaxKeys=2, Delimiter="/")
    assert keys(r) == ["a.txt"] and prefixes(r) == ["b/"]
    assert r["IsTruncated"] is True
    assert r["NextMarker"] == "b/"
    r = s3.list_objects(Bucket=tree, MaxKeys=2, Delimiter="/", Marker=r["NextMarker"])
    assert prefixes(r) == ["d/"] and keys(r) == ["e.txt"]
    assert r["NextMarker"] == "e.txt"
    assert r["Marker"] == "b/"


# --- EncodingType=url ----------------------------------------------------------------------

# In listing order (UTF-8 byte order: 'x' < 'ü').
ENCODED_KEYS = ["plain.txt", "sp ace/x&y=z.txt", "sp ace/ü+plus%pct.txt", "zz/ctrl\x01char"]
assert ENCODED_KEYS == sorted(ENCODED_KEYS, key=str.encode)


@pytest.fixture
def awkward(s3, bucket):
    for k in ENCODED_KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    return bucket


def check_encoded(raw, original):
    # S3 percent-encodes the key (space may be '+' or '%20'); botocore decodes with
    # unquote_plus, so a literal '+' must arrive as %2B.
    assert urllib.parse.unquote_plus(raw) == original
    assert all(0x20 < ord(c) < 0x7F for c in raw), raw
    if "+" in original:
        assert "%2B" in raw


def test_encoding_type_url_v2(s3, awkward):
    # Passing EncodingType explicitly makes botocore leave the encoded values alone.
    r = s3.list_objects_v2(Bucket=awkward, EncodingType="url")
    assert r["EncodingType"] == "url"
    got = keys(r)
    assert len(got) == len(ENCODED_KEYS)
    for raw, original in zip(got, ENCODED_KEYS):
        check_encoded(raw, original)
    assert got[0] == "plain.txt"


def test_encoding_type_url_v1(s3, awkward):
    r = s3.list_objects(Bucket=awkward, EncodingType="url")
    assert r["EncodingType"] == "url"
    for raw, original in zip(keys(r), ENCODED_KEYS):
        check_encoded(raw, original)


def test_encoding_type_url_common_prefixes_v2(s3, awkward):
    r = s3.list_objects_v2(Bucket=awkward, EncodingType="url", Delimiter="/")
    assert keys(r) == ["plain.txt"]
    assert len(prefixes(r)) == 2
    check_encoded(prefixes(r)[0], "sp ace/")
    assert prefixes(r)[1] == "zz/"


@moto_gap("ListObjects v1 does not url-encode CommonPrefixes")
def test_encoding_type_url_common_prefixes_v1(s3, awkward):
    r = s3.list_objects(Bucket=awkward, EncodingType="url", Delimiter="/")
    assert keys(r) == ["plain.txt"]
    assert len(prefixes(r)) == 2
    check_encoded(prefixes(r)[0], "sp ace/")
    assert prefixes(r)[1] == "zz/"


def test_encoding_auto_decoded_by_botocore(s3, awkward):
    # Without EncodingType botocore asks for url encoding and decodes the answer.
    assert keys(s3.list_objects_v2(Bucket=awkward)) == ENCODED_KEYS
    assert keys(s3.list_objects(Bucket=awkward)) == ENCODED_KEYS
    r = s3.list_objects_v2(Bucket=awkward, Prefix="sp ace/", Delimiter="/")
    assert keys(r) == ENCODED_KEYS[1:3]


# --- paginators over many keys --------------------------------------------------------------

N_BIG = 2500


@pytest.fixture(scope="module")
def big(endpoint):
    client = make_s3(endpoint, max_pool_connections=32)
    name = bucket_name("big")
    client.create_bucket(Bucket=name)
    all_keys = sorted(f"p{i % 5}/{i:05d}" for i in range(N_BIG))

    def one(k):
        client.put_object(Bucket=name, Key=k, Body=b"")
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(one, all_keys))
    yield name, all_keys
    empty_and_delete(client, name)


def test_paginate_v2(s3, big):
    name, all_keys = big
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=name))
    assert [p["KeyCount"] for p in pages] == [1000, 1000, 500]
    assert [k for p in pages for k in keys(p)] == all_keys
    assert [p["IsTruncated"] for p in pages] == [True, True, False]


def test_paginate_v2_page_size_and_prefix(s3, big):
    name, all_keys = big
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=name, Prefix="p3/", PaginationConfig={"PageSize": 200}))
    want = [k for k in all_keys if k.startswith("p3/")]
    assert [len(keys(p)) for p in pages] == [200, 200, 100]
    assert [k for p in pages for k in keys(p)] == want


def test_paginate_v1(s3, big):
    name, all_keys = big
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=name, PaginationConfig={"PageSize": 700}))
    assert [len(keys(p)) for p in pages] == [700, 700, 700, 400]
    assert [k for p in pages for k in keys(p)] == all_keys


def test_paginate_delimiter_over_many(s3, big):
    name, _ = big
    r = s3.list_objects_v2(Bucket=name, Delimiter="/")
    assert prefixes(r) == [f"p{i}/" for i in range(5)]
    assert keys(r) == [] and r["KeyCount"] == 5


# --- ListObjectVersions -------------------------------------------------------------------

def test_list_object_versions_unversioned(s3, bucket):
    s3.put_object(Bucket=bucket, Key="x", Body=b"1")
    s3.put_object(Bucket=bucket, Key="x", Body=b"22")
    r = s3.list_object_versions(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(r["Versions"]) == 1
    v = r["Versions"][0]
    assert (v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) == ("x", "null", True, 2)
    assert v["ETag"] == f'"{md5_hex(b"22")}"'
    assert "DeleteMarkers" not in r
    assert r["IsTruncated"] is False


def test_list_object_versions_versioned(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"two")["VersionId"]
    assert v1 and v2 and v1 != v2
    s3.put_object(Bucket=bucket, Key="other", Body=b"o")
    d = s3.delete_object(Bucket=bucket, Key="doc")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]

    r = s3.list_object_versions(Bucket=bucket)
    versions = [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r["Versions"]]
    # Per key, newest first.
    assert versions[:2] == [("doc", v2, False), ("doc", v1, False)]
    assert versions[2][0] == "other" and versions[2][2] is True
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [("doc", marker, True)]

    # The key is gone from plain listings and GETs, but old versions remain readable.
    assert keys(s3.list_objects_v2(Bucket=bucket)) == ["other"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc")
    assert err(e) == ("NoSuchKey", 404)
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["Body"].read() == b"one"

    r = s3.list_object_versions(Bucket=bucket, Prefix="oth")
    assert [v["Key"] for v in r["Versions"]] == ["other"] and "DeleteMarkers" not in r
