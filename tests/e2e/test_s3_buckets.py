"""S3 buckets through boto3: lifecycle, regions and location constraints, naming
rules, and the bucket sub-resources (tagging, ownership controls, public access
block, default encryption).

Defaults follow AWS as documented since April 2023: new buckets have
BucketOwnerEnforced ownership, all four Block Public Access settings on, and
SSE-S3 (AES256) default encryption.
"""
import datetime

import pytest

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, s3_in, bucket and helpers)


def test_create_head_list_delete(s3):
    name = bucket_name()
    r = s3.create_bucket(Bucket=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["Location"] == f"/{name}"

    h = s3.head_bucket(Bucket=name)
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"

    listed = s3.list_buckets()
    mine = [b for b in listed["Buckets"] if b["Name"] == name]
    assert len(mine) == 1
    assert isinstance(mine[0]["CreationDate"], datetime.datetime)
    age = datetime.datetime.now(datetime.timezone.utc) - mine[0]["CreationDate"]
    assert abs(age.total_seconds()) < 300
    assert listed["Owner"]["ID"]

    d = s3.delete_bucket(Bucket=name)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_head_missing_bucket_is_bare_404(s3):
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=bucket_name("missing"))
    # HEAD has no body, so botocore reports the status code as the error code.
    assert err(e) == ("404", 404)


def test_delete_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket_name("missing"))
    assert err(e) == ("NoSuchBucket", 404)
    assert e.value.response["Error"]["Message"] == "The specified bucket does not exist"


def test_list_buckets_prefix(s3):
    stem = bucket_name("lp")
    names = [f"{stem}-{i}" for i in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        got = [b["Name"] for b in s3.list_buckets(Prefix=stem)["Buckets"]]
        assert got == names  # sorted by name
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)


@moto_gap("ListBuckets ignores MaxBuckets / ContinuationToken")
def test_list_buckets_paginated(s3):
    stem = bucket_name("lpg")
    names = [f"{stem}-{i}" for i in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        first = s3.list_buckets(Prefix=stem, MaxBuckets=2)
        assert [b["Name"] for b in first["Buckets"]] == names[:2]
        assert first["ContinuationToken"]
        rest = s3.list_buckets(Prefix=stem, MaxBuckets=2, ContinuationToken=first["ContinuationToken"])
        assert [b["Name"] for b in rest["Buckets"]] == names[2:]
        assert "ContinuationToken" not in rest
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)


def test_delete_non_empty_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert err(e) == ("BucketNotEmpty", 409)
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.delete_object(Bucket=bucket, Key="k")
    assert s3.delete_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=bucket)
    assert status(e) == 404


# --- regions -------------------------------------------------------------------

def test_get_bucket_location_us_east_1_is_null(s3, bucket):
    r = s3.get_bucket_location(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["LocationConstraint"] is None


def test_create_with_location_constraint(s3, s3_in):
    eu = s3_in("eu-west-1")
    name = bucket_name("eu")
    r = eu.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    try:
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
        h = eu.head_bucket(Bucket=name)
        assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-west-1"
        # Outside us-east-1, re-creating your own bucket is an error.
        with pytest.raises(ClientError) as e:
            eu.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert err(e) == ("BucketAlreadyOwnedByYou", 409)
    finally:
        empty_and_delete(eu, name)


def test_location_constraint_must_match_region(s3, s3_in):
    # A request signed for eu-west-1 without a constraint would create the bucket in
    # us-east-1, which AWS refuses ...
    name = bucket_name("lc")
    with pytest.raises(ClientError) as e:
        s3_in("eu-west-1").create_bucket(Bucket=name)
    assert err(e) == ("IllegalLocationConstraintException", 400)
    # ... and us-east-1 is never spelled out as a constraint.
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert err(e) == ("InvalidLocationConstraint", 400)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert status(e) == 404


def test_recreate_own_bucket_in_us_east_1_succeeds(s3, bucket):
    # Documented legacy behaviour: in us-east-1, CreateBucket of a bucket you already
    # own returns 200 OK (elsewhere it is BucketAlreadyOwnedByYou), and leaves it intact.
    s3.put_object(Bucket=bucket, Key="keep", Body=b"still here")
    r = s3.create_bucket(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"still here"


# --- naming rules --------------------------------------------------------------

NAMING = "validates only the length of bucket names"


@pytest.mark.parametrize("name", [
    "ab",                                              # shorter than 3
    pytest.param("a" * 64, id="64-chars"),             # longer than 63
    pytest.param("UPPER", marks=moto_gap(NAMING)),     # upper case
    pytest.param("a..b", marks=moto_gap(NAMING)),      # adjacent periods
    pytest.param("192.168.1.1", marks=moto_gap(NAMING)),  # IP address form
    pytest.param("-leading-dash", marks=moto_gap(NAMING)),
    pytest.param("under_score", marks=moto_gap(NAMING)),
])
def test_invalid_bucket_names(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert err(e) == ("InvalidBucketName", 400)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_valid_unusual_bucket_names(s3):
    for name in (f"a.b-c.{bucket_name('d')}", "x" * 3 + bucket_name("")[1:16]):
        assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
        s3.delete_bucket(Bucket=name)


# --- tagging -------------------------------------------------------------------

def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err(e) == ("NoSuchTagSet", 404)

    tags = [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "storage"}]
    r = s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert sorted(got, key=lambda t: t["Key"]) == tags

    # PUT replaces the whole set.
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "only", "Value": "one"}]

    r = s3.delete_bucket_tagging(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err(e) == ("NoSuchTagSet", 404)


def test_bucket_tagging_on_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket_name("missing"))
    assert err(e) == ("NoSuchBucket", 404)


# --- ownership controls ----------------------------------------------------------

@moto_gap("new buckets have no ownership controls (pre-April-2023 default)")
def test_ownership_controls_default_is_bucket_owner_enforced(s3, bucket):
    r = s3.get_bucket_ownership_controls(Bucket=bucket)
    assert r["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_ownership_controls_put_get_delete(s3, bucket):
    r = s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert got == [{"ObjectOwnership": "ObjectWriter"}]

    r = s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket=bucket)
    assert err(e) == ("OwnershipControlsNotFoundError", 404)


def test_create_bucket_with_object_ownership(s3):
    name = bucket_name("own")
    s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerPreferred")
    try:
        got = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"]
        assert got == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    finally:
        s3.delete_bucket(Bucket=name)


# --- public access block -------------------------------------------------------------

@moto_gap("new buckets have no public access block (pre-April-2023 default)")
def test_public_access_block_default_is_all_on(s3, bucket):
    cfg = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert cfg == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                   "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def test_public_access_block_put_get_delete(s3, bucket):
    # Start from "no configuration" whatever the creation default was.
    s3.delete_public_access_block(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert err(e) == ("NoSuchPublicAccessBlockConfiguration", 404)

    cfg = {"BlockPublicAcls": True, "IgnorePublicAcls": False,
           "BlockPublicPolicy": True, "RestrictPublicBuckets": False}
    r = s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=cfg)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == cfg

    r = s3.delete_public_access_block(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert err(e) == ("NoSuchPublicAccessBlockConfiguration", 404)


# --- default encryption --------------------------------------------------------------

@moto_gap("new buckets have no default encryption (pre-2023 default)")
def test_bucket_encryption_default_is_sse_s3(s3, bucket):
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert len(rules) == 1
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert rules[0].get("BucketKeyEnabled") is False


def test_bucket_encryption_put_get_delete(s3, bucket):
    cfg = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                      "BucketKeyEnabled": True}]}
    r = s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=cfg)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert got["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert got["Rules"][0]["BucketKeyEnabled"] is True
    r = s3.delete_bucket_encryption(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204


@moto_gap("deleting default encryption leaves none (AWS falls back to SSE-S3)")
def test_bucket_encryption_delete_falls_back_to_sse_s3(s3, bucket):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                   "BucketKeyEnabled": True}]})
    s3.delete_bucket_encryption(Bucket=bucket)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert rules[0].get("BucketKeyEnabled") is False
