"""S3 bucket lifecycle configuration as AWS documents and behaves: the configuration
round trip, validation errors, the x-amz-expiration header, and the rules carried out
(expiration by prefix and tag, delete markers on versioned buckets, noncurrent version
expiration, transitions to archive classes with InvalidObjectState and RestoreObject,
aborting incomplete multipart uploads).

nimbus evaluates rules once a minute; these tests run an evaluation "as of" a later time
through POST /_nimbus/s3/lifecycle?at=EPOCH_SECONDS.
"""
import calendar
import email.utils
import os
import re
import time

import pytest
import requests

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)

DAY = 86_400


def run_lifecycle(endpoint, days_ahead):
    at = int(time.time()) + days_ahead * DAY
    r = requests.post(f"{endpoint}/_nimbus/s3/lifecycle?at={at}", timeout=30)
    assert r.status_code == 200, r.text


def lifecycle(s3, bucket, *rules):
    r = s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    return r


def rule(rule_id, filt, **actions):
    return {"ID": rule_id, "Status": "Enabled", "Filter": filt, **actions}


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def midnight_after(epoch):
    """S3 dates a Days action at creation + N days, rounded up to the next midnight UTC."""
    m = epoch // DAY * DAY
    return m if m == epoch else m + DAY


def rfc822(epoch):
    return email.utils.formatdate(epoch, usegmt=True)


# --- configuration round trip and validation -----------------------------------------------

def test_lifecycle_configuration_round_trip(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert err(e) == ("NoSuchLifecycleConfiguration", 404)
    assert e.value.response["Error"]["Message"] == "The lifecycle configuration does not exist"

    rules = [
        rule("tmp", {"Prefix": "tmp/"}, Expiration={"Days": 7}),
        rule("tagged", {"Tag": {"Key": "class", "Value": "scratch"}}, Expiration={"Days": 3}),
        rule("archive", {"And": {"Prefix": "logs/", "Tags": [{"Key": "a", "Value": "b"}]}},
             Transitions=[{"Days": 30, "StorageClass": "STANDARD_IA"},
                          {"Days": 90, "StorageClass": "GLACIER"}]),
        rule("uploads", {"Prefix": ""}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2}),
    ]
    lifecycle(s3, bucket, *rules)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Rules"] == rules

    d = s3.delete_bucket_lifecycle(Bucket=bucket)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert err(e) == ("NoSuchLifecycleConfiguration", 404)
    # Deleting again is not an error.
    assert s3.delete_bucket_lifecycle(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_lifecycle_transition_default_minimum_object_size(s3, bucket):
    # Since September 2024 S3 answers with the default minimum object size for transitions.
    r = lifecycle(s3, bucket, rule("t", {"Prefix": ""}, Transitions=[{"Days": 1, "StorageClass": "GLACIER"}]))
    assert r.get("TransitionDefaultMinimumObjectSize") == "all_storage_classes_128K"
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert got.get("TransitionDefaultMinimumObjectSize") == "all_storage_classes_128K"


def test_lifecycle_on_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket_name("missing"))
    assert err(e) == ("NoSuchBucket", 404)


@pytest.mark.parametrize("bad, expected, message", [
    # Days must be positive: AWS answers InvalidArgument (not MalformedXML).
    (rule("r", {"Prefix": ""}, Expiration={"Days": 0}), "InvalidArgument",
     "'Days' for Expiration action must be a positive integer"),
    (rule("r", {"Prefix": ""}, Expiration={"Days": -1}), "InvalidArgument",
     "'Days' for Expiration action must be a positive integer"),
    (rule("r", {"Prefix": ""}, NoncurrentVersionExpiration={"NoncurrentDays": 0}), "InvalidArgument",
     "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer"),
    (rule("r", {"Prefix": ""}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 0}), "InvalidArgument",
     "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer"),
    (rule("r", {"Prefix": ""}, Transitions=[{"Days": 10, "StorageClass": "STANDARD_IA"}]), "InvalidArgument",
     "'Days' in Transition action must be greater than or equal to 30 for storageClass 'STANDARD_IA'"),
    (rule("r", {"Prefix": ""}, Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True}), "InvalidArgument",
     "ExpiredObjectDeleteMarker cannot be specified with expiration days or date."),
    (rule("r", {"Prefix": ""}), "InvalidRequest", "At least one action needs to be specified in a rule"),
    (rule("r", {"Tag": {"Key": "a", "Value": "b"}}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}),
     "InvalidArgument", None),
    ({"ID": "r", "Status": "Enabled", "Expiration": {"Days": 1}}, "MalformedXML", None),
], ids=["days0", "days-negative", "noncurrent0", "abort0", "ia-under-30", "marker-with-days",
        "no-action", "abort-with-tag", "no-filter"])
def test_lifecycle_validation(s3, bucket, bad, expected, message):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [bad]})
    assert err(e) == (expected, 400)
    if message:
        assert e.value.response["Error"]["Message"] == message
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(e) == "NoSuchLifecycleConfiguration"


def test_duplicate_rule_ids_are_rejected(s3, bucket):
    with pytest.raises(ClientError) as e:
        lifecycle(s3, bucket, rule("same", {"Prefix": "a/"}, Expiration={"Days": 1}),
                  rule("same", {"Prefix": "b/"}, Expiration={"Days": 2}))
    assert err(e) == ("InvalidArgument", 400)
    assert e.value.response["Error"]["Message"] == "Rule ID must be unique. Found same ID for more than one rule"


# --- x-amz-expiration ----------------------------------------------------------------------

def test_expiration_header_on_put_head_and_get(s3, bucket):
    lifecycle(s3, bucket, rule("tmp-rule", {"Prefix": "tmp/"}, Expiration={"Days": 3}))
    p = s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"x")
    h = s3.head_object(Bucket=bucket, Key="tmp/a")
    created = calendar.timegm(h["LastModified"].utctimetuple())
    expected = f'expiry-date="{rfc822(midnight_after(created + 3 * DAY))}", rule-id="tmp-rule"'
    assert p["Expiration"] == expected
    assert h["Expiration"] == expected
    assert s3.get_object(Bucket=bucket, Key="tmp/a")["Expiration"] == expected
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"] == expected
    # Objects outside the rule carry no header.
    assert "Expiration" not in s3.put_object(Bucket=bucket, Key="keep/a", Body=b"x")
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="keep/a")


# --- expiration --------------------------------------------------------------------------------

def test_expiration_by_prefix_and_tag(s3, bucket, endpoint):
    lifecycle(s3, bucket,
              rule("by-prefix", {"Prefix": "tmp/"}, Expiration={"Days": 1}),
              rule("by-tag", {"Tag": {"Key": "class", "Value": "scratch"}}, Expiration={"Days": 1}))
    s3.put_object(Bucket=bucket, Key="tmp/one", Body=b"1")
    s3.put_object(Bucket=bucket, Key="tmp/two", Body=os.urandom(10_000))
    s3.put_object(Bucket=bucket, Key="data/tagged", Body=b"t", Tagging="class=scratch")
    s3.put_object(Bucket=bucket, Key="data/other-tag", Body=b"t", Tagging="class=keep")
    s3.put_object(Bucket=bucket, Key="data/plain", Body=b"p")
    s3.put_object(Bucket=bucket, Key="tmpfile", Body=b"p")

    run_lifecycle(endpoint, 0)  # nothing is due yet
    assert len(keys(s3, bucket)) == 6

    run_lifecycle(endpoint, 3)
    assert keys(s3, bucket) == ["data/other-tag", "data/plain", "tmpfile"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="tmp/one")
    assert err(e) == ("NoSuchKey", 404)
    # An unversioned bucket keeps no trace of expired objects.
    assert sorted(v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]) == [
        "data/other-tag", "data/plain", "tmpfile"]


def test_disabled_rule_does_nothing(s3, bucket, endpoint):
    lifecycle(s3, bucket, {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": ""},
                           "Expiration": {"Days": 1}})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    run_lifecycle(endpoint, 3)
    assert keys(s3, bucket) == ["k"]


def test_expiration_on_versioned_bucket_adds_delete_marker(s3, bucket, endpoint):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    lifecycle(s3, bucket, rule("exp", {"Prefix": "tmp/"}, Expiration={"Days": 1}))
    v1 = s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"a")["VersionId"]
    s3.put_object(Bucket=bucket, Key="keep", Body=b"k")
    run_lifecycle(endpoint, 3)
    assert keys(s3, bucket) == ["keep"]
    r = s3.list_object_versions(Bucket=bucket, Prefix="tmp/")
    assert [(v["VersionId"], v["IsLatest"]) for v in r["Versions"]] == [(v1, False)]
    assert len(r["DeleteMarkers"]) == 1
    marker = r["DeleteMarkers"][0]
    assert marker["IsLatest"] is True and marker["VersionId"] not in (v1, "null")
    assert s3.get_object(Bucket=bucket, Key="tmp/a", VersionId=v1)["Body"].read() == b"a"
    # Running again does not stack another marker on top of the first.
    run_lifecycle(endpoint, 4)
    assert len(s3.list_object_versions(Bucket=bucket, Prefix="tmp/")["DeleteMarkers"]) == 1


def test_noncurrent_version_expiration(s3, bucket, endpoint):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    lifecycle(s3, bucket, rule("nc", {"Prefix": ""}, NoncurrentVersionExpiration={"NoncurrentDays": 1}))
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"two")["VersionId"]
    v3 = s3.put_object(Bucket=bucket, Key="doc", Body=b"three")["VersionId"]
    only = s3.put_object(Bucket=bucket, Key="single", Body=b"s")["VersionId"]
    run_lifecycle(endpoint, 0)
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == 4
    run_lifecycle(endpoint, 3)
    r = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r["Versions"]] == [
        ("doc", v3, True), ("single", only, True)]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)
    assert err(e) == ("NoSuchVersion", 404)
    assert v2 not in {v["VersionId"] for v in r["Versions"]}
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"three"


# --- transitions, archive classes and restore ---------------------------------------------------

BIG = 200 * 1024  # above the 128 KiB default minimum size for transitions


def test_transition_to_glacier_then_restore(s3, bucket, endpoint):
    lifecycle(s3, bucket, rule("cold", {"Prefix": "cold/"}, Transitions=[{"Days": 1, "StorageClass": "GLACIER"}]))
    body = os.urandom(BIG)
    s3.put_object(Bucket=bucket, Key="cold/a", Body=body)
    s3.put_object(Bucket=bucket, Key="warm/a", Body=body)
    run_lifecycle(endpoint, 3)

    h = s3.head_object(Bucket=bucket, Key="cold/a")
    assert h["StorageClass"] == "GLACIER"
    assert "Restore" not in h
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="warm/a")
    listed = {o["Key"]: o["StorageClass"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {"cold/a": "GLACIER", "warm/a": "STANDARD"}

    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="cold/a")
    assert err(e) == ("InvalidObjectState", 403)
    assert e.value.response["Error"]["Message"] == "The operation is not valid for the object's storage class"
    assert e.value.response["Error"].get("StorageClass") == "GLACIER"

    before = int(time.time())
    r = s3.restore_object(Bucket=bucket, Key="cold/a", RestoreRequest={"Days": 1})
    after = int(time.time())
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202

    g = s3.get_object(Bucket=bucket, Key="cold/a")
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert g["Body"].read() == body
    assert g["StorageClass"] == "GLACIER"

    h = s3.head_object(Bucket=bucket, Key="cold/a")
    m = re.fullmatch(r'ongoing-request="false", expiry-date="(.+)"', h["Restore"])
    assert m, h["Restore"]
    expiry = calendar.timegm(email.utils.parsedate(m.group(1)))
    # The restored copy lives Days days from completion, rounded up to midnight UTC.
    assert expiry in {midnight_after(before + DAY), midnight_after(after + DAY)}
    assert m.group(1).endswith("00:00:00 GMT")

    # Restoring an already restored object extends it: 200, not 202.
    r = s3.restore_object(Bucket=bucket, Key="cold/a", RestoreRequest={"Days": 2})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_small_objects_do_not_transition_by_default(s3, bucket, endpoint):
    # With the default TransitionDefaultMinimumObjectSize (all_storage_classes_128K)
    # objects smaller than 128 KiB are not transitioned.
    lifecycle(s3, bucket, rule("cold", {"Prefix": ""}, Transitions=[{"Days": 1, "StorageClass": "GLACIER"}]))
    s3.put_object(Bucket=bucket, Key="small", Body=b"x" * 1024)
    s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(BIG))
    run_lifecycle(endpoint, 3)
    assert s3.head_object(Bucket=bucket, Key="big")["StorageClass"] == "GLACIER"
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="small")


def test_restore_of_standard_object_is_invalid_object_state(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.restore_object(Bucket=bucket, Key="k", RestoreRequest={"Days": 1})
    assert err(e) == ("InvalidObjectState", 403)
    assert e.value.response["Error"]["Message"] == "Restore is not allowed for the object's current storage class"
    with pytest.raises(ClientError) as e:
        s3.restore_object(Bucket=bucket, Key="missing", RestoreRequest={"Days": 1})
    assert err(e) == ("NoSuchKey", 404)


def test_deep_archive_put_is_not_readable_until_restored(s3, bucket):
    body = b"frozen" * 100
    p = s3.put_object(Bucket=bucket, Key="deep", Body=body, StorageClass="DEEP_ARCHIVE")
    assert p["ResponseMetadata"]["HTTPStatusCode"] == 200
    h = s3.head_object(Bucket=bucket, Key="deep")
    assert h["StorageClass"] == "DEEP_ARCHIVE" and h["ContentLength"] == len(body)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="deep")
    assert err(e) == ("InvalidObjectState", 403)
    assert e.value.response["Error"].get("StorageClass") == "DEEP_ARCHIVE"
    r = s3.restore_object(Bucket=bucket, Key="deep", RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert s3.get_object(Bucket=bucket, Key="deep")["Body"].read() == body


# --- incomplete multipart uploads ---------------------------------------------------------------

def test_abort_incomplete_multipart_upload(s3, bucket, endpoint):
    lifecycle(s3, bucket, rule("abort", {"Prefix": "up/"}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}))
    doomed = s3.create_multipart_upload(Bucket=bucket, Key="up/big")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="up/big", UploadId=doomed, PartNumber=1, Body=b"p" * 1024)
    kept = s3.create_multipart_upload(Bucket=bucket, Key="other/big")["UploadId"]
    run_lifecycle(endpoint, 0)
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 2
    run_lifecycle(endpoint, 3)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("other/big", kept)]
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="up/big", UploadId=doomed)
    assert err(e) == ("NoSuchUpload", 404)
    assert keys(s3, bucket) == []
