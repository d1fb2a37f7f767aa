"""Who may read a bucket: private-by-default buckets, bucket policies (Allow, Deny,
conditions, malformed documents), Block Public Access, Object Ownership and ACLs,
and a caller from another account.

nimbus follows the defaults of new AWS buckets (since April 2023): all four Block
Public Access settings on and Object Ownership BucketOwnerEnforced (ACLs disabled).
Anonymous requests are plain `requests` calls without any signature; in nimbus's
default "open" auth mode a 12-digit access key id stands for that account.
Presigned URLs on private buckets are covered in test_s3_presign.py.
"""
import json

import boto3
import botocore.config
import pytest
import requests

from conftest import REGION
from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
OTHER_ACCOUNT = "111111111111"


# --- helpers --------------------------------------------------------------------

def anon_get(endpoint, bucket, key="", **kw):
    return requests.get(f"{endpoint}/{bucket}/{key}", **kw)


def assert_xml_error(r, status_code, error_code):
    assert r.status_code == status_code, r.text
    assert r.headers["Content-Type"].startswith("application/xml"), r.headers
    assert f"<Code>{error_code}</Code>" in r.text, r.text


def statement(bucket, effect="Allow", action="s3:GetObject", resource=None, principal="*", **extra):
    st = {
        "Effect": effect,
        "Principal": principal,
        "Action": action,
        "Resource": resource or f"arn:aws:s3:::{bucket}/*",
    }
    st.update(extra)
    return st


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def public_read(bucket, list_bucket=False):
    sts = [statement(bucket, Sid="PublicRead")]
    if list_bucket:
        sts.append(statement(bucket, action="s3:ListBucket", resource=f"arn:aws:s3:::{bucket}", Sid="PublicList"))
    return policy(*sts)


def client_for(endpoint, access_key):
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=access_key, aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello world", ContentType="text/plain")
    return bucket


@pytest.fixture
def open_bucket(s3, obj):
    """A bucket with one object and Block Public Access removed."""
    s3.delete_public_access_block(Bucket=obj)
    return obj


# --- defaults: private, Block Public Access on, ACLs disabled --------------------

def test_new_bucket_defaults(s3, bucket):
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert pab == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                   "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert err(e) == ("NoSuchBucketPolicy", 404)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy_status(Bucket=bucket)
    assert err(e) == ("NoSuchBucketPolicy", 404)


def test_delete_public_access_block(s3, bucket):
    r = s3.delete_public_access_block(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert err(e) == ("NoSuchPublicAccessBlockConfiguration", 404)


def test_private_bucket_refuses_anonymous(endpoint, obj):
    r = anon_get(endpoint, obj, "hello.txt")
    assert_xml_error(r, 403, "AccessDenied")
    assert "<Message>Access Denied</Message>" in r.text
    # A missing key looks the same: without s3:ListBucket nobody learns what exists.
    assert_xml_error(anon_get(endpoint, obj, "missing.txt"), 403, "AccessDenied")
    assert_xml_error(requests.get(f"{endpoint}/{obj}"), 403, "AccessDenied")
    assert_xml_error(requests.get(f"{endpoint}/{obj}?list-type=2"), 403, "AccessDenied")
    assert requests.head(f"{endpoint}/{obj}/hello.txt").status_code == 403
    assert_xml_error(requests.put(f"{endpoint}/{obj}/new.txt", data=b"x"), 403, "AccessDenied")
    assert_xml_error(requests.delete(f"{endpoint}/{obj}/hello.txt"), 403, "AccessDenied")


def test_owner_still_reads_private_bucket(s3, obj):
    assert s3.get_object(Bucket=obj, Key="hello.txt")["Body"].read() == b"hello world"


# --- bucket policies ---------------------------------------------------------------

def test_public_policy_refused_while_block_public_policy_on(s3, obj):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=obj, Policy=public_read(obj))
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=obj)
    assert err(e) == ("NoSuchBucketPolicy", 404)


def test_public_read_policy_lifecycle(endpoint, s3, open_bucket):
    b = open_bucket
    assert_xml_error(anon_get(endpoint, b, "hello.txt"), 403, "AccessDenied")
    doc = public_read(b)
    r = s3.put_bucket_policy(Bucket=b, Policy=doc)
    assert r["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    r = anon_get(endpoint, b, "hello.txt")
    assert r.status_code == 200, r.text
    assert r.content == b"hello world"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["ETag"] == f'"{md5_hex(b"hello world")}"'
    # Round trip and status.
    assert json.loads(s3.get_bucket_policy(Bucket=b)["Policy"]) == json.loads(doc)
    assert s3.get_bucket_policy_status(Bucket=b)["PolicyStatus"] == {"IsPublic": True}
    # s3:GetObject alone: a missing key is indistinguishable from a forbidden one.
    assert_xml_error(anon_get(endpoint, b, "missing.txt"), 403, "AccessDenied")
    # Listing is still refused.
    assert_xml_error(requests.get(f"{endpoint}/{b}"), 403, "AccessDenied")
    # Writing is still refused.
    assert_xml_error(requests.put(f"{endpoint}/{b}/new.txt", data=b"x"), 403, "AccessDenied")
    # Delete: private again.
    r = s3.delete_bucket_policy(Bucket=b)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_xml_error(anon_get(endpoint, b, "hello.txt"), 403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=b)
    assert err(e) == ("NoSuchBucketPolicy", 404)
    assert "The bucket policy does not exist" in str(e.value)


def test_list_bucket_grant_reveals_missing_keys(endpoint, s3, open_bucket):
    b = open_bucket
    s3.put_bucket_policy(Bucket=b, Policy=public_read(b, list_bucket=True))
    r = anon_get(endpoint, b, "missing.txt")
    assert_xml_error(r, 404, "NoSuchKey")
    assert "<Key>missing.txt</Key>" in r.text
    r = requests.get(f"{endpoint}/{b}?list-type=2")
    assert r.status_code == 200, r.text
    assert "<ListBucketResult" in r.text
    assert "<Key>hello.txt</Key>" in r.text


def test_deny_wins_over_allow(endpoint, s3, open_bucket):
    b = open_bucket
    s3.put_object(Bucket=b, Key="secret/x", Body=b"classified")
    s3.put_object(Bucket=b, Key="public/y", Body=b"open")
    s3.put_bucket_policy(Bucket=b, Policy=policy(
        statement(b),
        statement(b, effect="Deny", resource=f"arn:aws:s3:::{b}/secret/*"),
    ))
    assert_xml_error(anon_get(endpoint, b, "secret/x"), 403, "AccessDenied")
    r = anon_get(endpoint, b, "public/y")
    assert r.status_code == 200 and r.content == b"open"
    r = anon_get(endpoint, b, "hello.txt")
    assert r.status_code == 200 and r.content == b"hello world"
    # The Deny names everyone, the bucket owner included.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="secret/x")
    assert err(e) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="public/y")["Body"].read() == b"open"


def test_deny_source_ip_condition_refuses_owner(s3, obj):
    b = obj
    # A Deny-only policy is not public, so Block Public Access does not stand in the way.
    s3.put_bucket_policy(Bucket=b, Policy=policy(statement(
        b, effect="Deny", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})))
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="hello.txt")
    assert err(e) == ("AccessDenied", 403)
    # Actions the Deny does not name still work.
    assert s3.head_bucket(Bucket=b)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # A range that contains 127.0.0.1 does not refuse.
    s3.put_bucket_policy(Bucket=b, Policy=policy(statement(
        b, effect="Deny", Condition={"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}})))
    assert s3.get_object(Bucket=b, Key="hello.txt")["Body"].read() == b"hello world"


def test_referer_condition(endpoint, s3, open_bucket):
    b = open_bucket
    s3.put_bucket_policy(Bucket=b, Policy=policy(statement(
        b, Condition={"StringLike": {"aws:Referer": ["http://www.example.com/*"]}})))
    r = anon_get(endpoint, b, "hello.txt", headers={"Referer": "http://www.example.com/page.html"})
    assert r.status_code == 200, r.text
    assert r.content == b"hello world"
    assert_xml_error(anon_get(endpoint, b, "hello.txt"), 403, "AccessDenied")
    assert_xml_error(anon_get(endpoint, b, "hello.txt", headers={"Referer": "http://evil.example.org/"}),
                     403, "AccessDenied")


@pytest.mark.parametrize("kind, public", [
    ("everyone", True),
    ("referer", True),
    ("account", False),
    ("source-ip", False),
])
def test_policy_status(s3, bucket, kind, public):
    s3.delete_public_access_block(Bucket=bucket)
    st = {
        "everyone": statement(bucket),
        "referer": statement(bucket, Condition={"StringLike": {"aws:Referer": "http://www.example.com/*"}}),
        "account": statement(bucket, principal={"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}),
        "source-ip": statement(bucket, Condition={"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}),
    }[kind]
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(st))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is public


@pytest.mark.parametrize("doc", [
    "this is not json",
    '{"Version": "2012-10-17", "Statement": [',
    "RESOURCE_OTHER_BUCKET",
    "BAD_ACTION",
    "NO_STATEMENT",
    "BAD_EFFECT",
])
def test_malformed_policy(s3, bucket, doc):
    s3.delete_public_access_block(Bucket=bucket)  # so only the document itself is judged
    if doc == "RESOURCE_OTHER_BUCKET":
        doc = policy(statement(bucket, resource="arn:aws:s3:::some-other-bucket-xyz/*"))
    elif doc == "BAD_ACTION":
        doc = policy(statement(bucket, action="s3:NoSuchAction"))
    elif doc == "NO_STATEMENT":
        doc = json.dumps({"Version": "2012-10-17"})
    elif doc == "BAD_EFFECT":
        doc = policy(statement(bucket, effect="Maybe"))
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=doc)
    assert err(e) == ("MalformedPolicy", 400)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert err(e) == ("NoSuchBucketPolicy", 404)


def test_malformed_policy_message(s3, bucket):
    s3.delete_public_access_block(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy="not json")
    assert err(e) == ("MalformedPolicy", 400)
    assert e.value.response["Error"]["Message"] == "Policies must be valid JSON and the first byte must be '{'"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy(
            statement(bucket, resource="arn:aws:s3:::some-other-bucket-xyz/*")))
    assert e.value.response["Error"]["Message"] == "Policy has invalid resource"


def test_restrict_public_buckets(endpoint, s3, obj):
    b = obj
    s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": False, "RestrictPublicBuckets": True})
    s3.put_bucket_policy(Bucket=b, Policy=public_read(b))
    assert_xml_error(anon_get(endpoint, b, "hello.txt"), 403, "AccessDenied")
    # The public policy counts for nobody outside the owner's account.
    other = client_for(endpoint, OTHER_ACCOUNT)
    with pytest.raises(ClientError) as e:
        other.get_object(Bucket=b, Key="hello.txt")
    assert err(e) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=b, Key="hello.txt")["Body"].read() == b"hello world"
    # Lifting the restriction makes the same policy work.
    s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    r = anon_get(endpoint, b, "hello.txt")
    assert r.status_code == 200 and r.content == b"hello world"


# --- ACLs ---------------------------------------------------------------------------

def test_acls_disabled_by_default(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    assert err(e) == ("AccessControlListNotSupported", 400)
    assert e.value.response["Error"]["Message"] == "The bucket does not allow ACLs"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert err(e) == ("AccessControlListNotSupported", 400)
    # bucket-owner-full-control is the one ACL a BucketOwnerEnforced bucket accepts.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    # Reading ACLs still works: the owner has FULL_CONTROL.
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert grants[0]["Grantee"]["Type"] == "CanonicalUser"


def test_public_read_acl(endpoint, s3, bucket):
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    # Block Public Access still refuses public ACLs.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"x", ACL="public-read")
    assert err(e) == ("AccessDenied", 403)
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"public body", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="priv.txt", Body=b"private body")
    r = anon_get(endpoint, bucket, "pub.txt")
    assert r.status_code == 200, r.text
    assert r.content == b"public body"
    assert_xml_error(anon_get(endpoint, bucket, "priv.txt"), 403, "AccessDenied")
    grants = s3.get_object_acl(Bucket=bucket, Key="pub.txt")["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in grants
    assert any(g["Permission"] == "FULL_CONTROL" and g["Grantee"]["Type"] == "CanonicalUser" for g in grants)
    s3.put_object_acl(Bucket=bucket, Key="pub.txt", ACL="private")
    assert_xml_error(anon_get(endpoint, bucket, "pub.txt"), 403, "AccessDenied")
    grants = s3.get_object_acl(Bucket=bucket, Key="pub.txt")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    s3.put_object_acl(Bucket=bucket, Key="priv.txt", ACL="public-read")
    r = anon_get(endpoint, bucket, "priv.txt")
    assert r.status_code == 200 and r.content == b"private body"


def test_ignore_public_acls(endpoint, s3, bucket):
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": True,
        "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"x", ACL="public-read")
    assert_xml_error(anon_get(endpoint, bucket, "pub.txt"), 403, "AccessDenied")
    # The grant is still stored; it is only ignored.
    grants = s3.get_object_acl(Bucket=bucket, Key="pub.txt")["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in grants
    s3.delete_public_access_block(Bucket=bucket)
    assert anon_get(endpoint, bucket, "pub.txt").status_code == 200


def test_public_read_bucket_acl_allows_listing(endpoint, s3, bucket):
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    r = requests.get(f"{endpoint}/{bucket}?list-type=2")
    assert r.status_code == 200, r.text
    assert "<Key>a.txt</Key>" in r.text
    # The bucket ACL lists; reading objects needs the object's own grant.
    assert_xml_error(anon_get(endpoint, bucket, "a.txt"), 403, "AccessDenied")


# --- another account -----------------------------------------------------------------

def test_other_account_needs_a_grant(endpoint, s3, obj):
    b = obj
    other = client_for(endpoint, OTHER_ACCOUNT)
    with pytest.raises(ClientError) as e:
        other.get_object(Bucket=b, Key="hello.txt")
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        other.list_objects_v2(Bucket=b)
    assert err(e) == ("AccessDenied", 403)
    # A grant to one account is not public, so Block Public Access allows it.
    s3.put_bucket_policy(Bucket=b, Policy=policy(statement(
        b, principal={"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})))
    assert other.get_object(Bucket=b, Key="hello.txt")["Body"].read() == b"hello world"
    # Only what was granted: listing and writing are still refused.
    with pytest.raises(ClientError) as e:
        other.list_objects_v2(Bucket=b)
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        other.put_object(Bucket=b, Key="from-other", Body=b"x")
    assert err(e) == ("AccessDenied", 403)
    # Anonymous callers get nothing from an account grant.
    assert_xml_error(anon_get(endpoint, b, "hello.txt"), 403, "AccessDenied")
    # Another account cannot manage the bucket's policy either.
    with pytest.raises(ClientError) as e:
        other.get_bucket_policy(Bucket=b)
    assert err(e) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        other.delete_bucket_policy(Bucket=b)
    assert err(e) == ("AccessDenied", 403)
