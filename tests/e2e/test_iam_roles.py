"""IAM, minimal slice for EC2 instance profiles: roles (CreateRole / GetRole / ListRoles /
DeleteRole) and instance profiles (Create/Get/List/Delete, Add/RemoveRoleToInstanceProfile,
ListInstanceProfilesForRole). Driven through boto3 (query protocol) and the aws CLI,
asserting what the IAM API reference documents.

Written before nimbus's IAM service and validated against moto
(NIMBUS_E2E_ENDPOINT=http://127.0.0.1:PORT NIMBUS_E2E_PEER=moto); the checks where
moto departs from documented AWS behaviour are marked `moto_gap` and stay strict
for nimbus. Every test makes its own uniquely named roles / profiles (uuid) under a
unique path and removes them again, so tests do not depend on order or on each other.
"""
import datetime
import json
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from s3_helpers import ON_MOTO, moto_gap  # noqa: F401  (peer detection lives there)


# --- helpers / fixtures ---------------------------------------------------------

def uniq(prefix="r"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def msg(excinfo):
    return excinfo.value.response["Error"].get("Message", "")


EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}

# IAM unique ids: a 4-letter type prefix then uppercase letters/digits, 21 chars in all.
ROLE_ID = re.compile(r"^AROA[A-Z0-9]{17}$")
PROFILE_ID = re.compile(r"^AIPA[A-Z0-9]{17}$")


@pytest.fixture
def iam(client):
    return client("iam")


@pytest.fixture
def account(client):
    acct = client("sts").get_caller_identity()["Account"]
    assert re.fullmatch(r"\d{12}", acct)
    return acct


@pytest.fixture
def path():
    """A unique IAM path, so ListRoles / ListInstanceProfiles can be narrowed to this test."""
    return f"/nimbus-e2e/{uuid.uuid4().hex[:12]}/"


def _quiet(fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchEntity":
            raise


@pytest.fixture
def cleanup(iam):
    """Tracks roles / instance profiles a test creates; removes them (and links) afterwards."""
    roles, profiles = [], []
    yield roles, profiles
    for p in profiles:
        try:
            got = iam.get_instance_profile(InstanceProfileName=p)["InstanceProfile"]
        except ClientError:
            continue
        for r in got["Roles"]:
            _quiet(iam.remove_role_from_instance_profile, InstanceProfileName=p, RoleName=r["RoleName"])
        _quiet(iam.delete_instance_profile, InstanceProfileName=p)
    for r in roles:
        try:
            for p in iam.list_instance_profiles_for_role(RoleName=r)["InstanceProfiles"]:
                _quiet(iam.remove_role_from_instance_profile,
                       InstanceProfileName=p["InstanceProfileName"], RoleName=r)
        except ClientError:
            pass
        try:
            for name in iam.list_role_policies(RoleName=r)["PolicyNames"]:
                _quiet(iam.delete_role_policy, RoleName=r, PolicyName=name)
        except ClientError:
            pass
        _quiet(iam.delete_role, RoleName=r)


@pytest.fixture
def make_role(iam, cleanup):
    def make(name=None, **kw):
        name = name or uniq("role")
        kw.setdefault("AssumeRolePolicyDocument", json.dumps(EC2_TRUST))
        role = iam.create_role(RoleName=name, **kw)["Role"]
        cleanup[0].append(name)
        return role
    return make


@pytest.fixture
def make_profile(iam, cleanup):
    def make(name=None, **kw):
        name = name or uniq("prof")
        prof = iam.create_instance_profile(InstanceProfileName=name, **kw)["InstanceProfile"]
        cleanup[1].append(name)
        return prof
    return make


# --- roles: create / get ----------------------------------------------------------

def test_create_role_defaults(make_role, account):
    name = uniq("role")
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    role = make_role(name)
    assert role["RoleName"] == name
    assert role["Path"] == "/"
    assert role["Arn"] == f"arn:aws:iam::{account}:role/{name}"
    assert ROLE_ID.match(role["RoleId"]), role["RoleId"]
    assert isinstance(role["CreateDate"], datetime.datetime)
    assert role["CreateDate"] >= before
    # AWS sends the policy URL-encoded; botocore decodes it into a dict
    assert role["AssumeRolePolicyDocument"] == EC2_TRUST


def test_create_role_with_path_description_tags(make_role, account, path):
    name = uniq("role")
    tags = [{"Key": "team", "Value": "nimbus"}, {"Key": "env", "Value": "e2e"}]
    role = make_role(name, Path=path, Description="instance role for e2e",
                     MaxSessionDuration=7200, Tags=tags)
    assert role["Path"] == path
    assert role["Arn"] == f"arn:aws:iam::{account}:role{path}{name}"
    assert role["Description"] == "instance role for e2e"
    assert role["MaxSessionDuration"] == 7200
    assert sorted((t["Key"], t["Value"]) for t in role["Tags"]) == [("env", "e2e"), ("team", "nimbus")]


def test_get_role_round_trip(iam, make_role, path):
    name = uniq("role")
    tags = [{"Key": "k", "Value": "v"}]
    created = make_role(name, Path=path, Description="round trip", Tags=tags)
    got = iam.get_role(RoleName=name)["Role"]
    for k in ("RoleName", "RoleId", "Arn", "Path", "CreateDate", "AssumeRolePolicyDocument"):
        assert got[k] == created[k], k
    assert got["Description"] == "round trip"
    assert got["MaxSessionDuration"] == 3600  # default
    assert got["Tags"] == tags
    assert got["AssumeRolePolicyDocument"] == EC2_TRUST


def test_get_role_default_max_session_duration(iam, make_role):
    name = make_role()["RoleName"]
    assert iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"] == 3600


def test_create_role_duplicate(iam, make_role):
    name = make_role()["RoleName"]
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    assert err(e) == ("EntityAlreadyExists", 409)
    assert name in msg(e)


@moto_gap("CreateRole accepts a trust policy that is not JSON at all")
def test_create_role_malformed_trust_policy(iam, cleanup):
    name = uniq("role")
    cleanup[0].append(name)  # in case it is (wrongly) created
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument="{not json")
    assert err(e) == ("MalformedPolicyDocument", 400)
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName=name)
    assert err(e) == ("NoSuchEntity", 404)


@moto_gap("CreateRole accepts a syntactically valid JSON trust policy that has no Statement")
def test_create_role_trust_policy_without_statement(iam, cleanup):
    name = uniq("role")
    cleanup[0].append(name)
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    assert err(e) == ("MalformedPolicyDocument", 400)


@moto_gap("CreateRole accepts a Path that does not begin and end with /")
def test_create_role_invalid_path(iam, cleanup):
    name = uniq("role")
    cleanup[0].append(name)
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=name, Path="no-slashes", AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    assert err(e) == ("ValidationError", 400)


def test_get_role_unknown(iam):
    name = uniq("nope")
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName=name)
    assert err(e) == ("NoSuchEntity", 404)
    assert name in msg(e)


# --- roles: list / delete ---------------------------------------------------------

def test_list_roles_contains_role(iam, make_role):
    role = make_role()
    names = []
    for page in iam.get_paginator("list_roles").paginate():
        names += [r["RoleName"] for r in page["Roles"]]
    assert role["RoleName"] in names


def test_list_roles_path_prefix(iam, make_role, path):
    a = make_role(Path=path)
    b = make_role(Path=path + "sub/")
    other = make_role()  # path "/"
    r = iam.list_roles(PathPrefix=path)
    got = {x["RoleName"]: x for x in r["Roles"]}
    assert set(got) == {a["RoleName"], b["RoleName"]}
    assert other["RoleName"] not in got
    assert r["IsTruncated"] is False
    assert got[a["RoleName"]]["Arn"] == a["Arn"]
    assert got[a["RoleName"]]["RoleId"] == a["RoleId"]
    assert got[a["RoleName"]]["AssumeRolePolicyDocument"] == EC2_TRUST
    r = iam.list_roles(PathPrefix=path + "sub/")
    assert [x["RoleName"] for x in r["Roles"]] == [b["RoleName"]]


def test_list_roles_pagination(iam, make_role, path):
    names = {make_role(Path=path)["RoleName"] for _ in range(3)}
    r = iam.list_roles(PathPrefix=path, MaxItems=2)
    assert len(r["Roles"]) == 2
    assert r["IsTruncated"] is True
    assert r["Marker"]
    r2 = iam.list_roles(PathPrefix=path, MaxItems=2, Marker=r["Marker"])
    assert r2["IsTruncated"] is False
    assert {x["RoleName"] for x in r["Roles"] + r2["Roles"]} == names


def test_delete_role(iam, make_role, path):
    name = make_role(Path=path)["RoleName"]
    iam.delete_role(RoleName=name)
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName=name)
    assert err(e) == ("NoSuchEntity", 404)
    assert iam.list_roles(PathPrefix=path)["Roles"] == []
    # the name is free again
    make_role(name)
    assert iam.get_role(RoleName=name)["Role"]["RoleName"] == name


def test_delete_role_unknown(iam):
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName=uniq("nope"))
    assert err(e) == ("NoSuchEntity", 404)


def test_delete_role_in_instance_profile(iam, make_role, make_profile):
    role = make_role()["RoleName"]
    prof = make_profile()["InstanceProfileName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=role)
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName=role)
    assert err(e) == ("DeleteConflict", 409)
    # still there, still linked
    assert iam.get_role(RoleName=role)["Role"]["RoleName"] == role
    got = iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    # once removed from the profile it can be deleted
    iam.remove_role_from_instance_profile(InstanceProfileName=prof, RoleName=role)
    iam.delete_role(RoleName=role)
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName=role)
    assert err(e) == ("NoSuchEntity", 404)


# --- instance profiles ------------------------------------------------------------

def test_create_instance_profile_defaults(make_profile, account):
    name = uniq("prof")
    p = make_profile(name)
    assert p["InstanceProfileName"] == name
    assert p["Path"] == "/"
    assert p["Arn"] == f"arn:aws:iam::{account}:instance-profile/{name}"
    assert p["InstanceProfileId"]
    assert isinstance(p["CreateDate"], datetime.datetime)
    assert p["Roles"] == []


@moto_gap("InstanceProfileId is a random lowercase string, not AIPA + 17 uppercase characters")
def test_instance_profile_id_format(iam, make_profile):
    p = make_profile()
    assert PROFILE_ID.match(p["InstanceProfileId"]), p["InstanceProfileId"]
    got = iam.get_instance_profile(InstanceProfileName=p["InstanceProfileName"])["InstanceProfile"]
    assert got["InstanceProfileId"] == p["InstanceProfileId"]


def test_create_instance_profile_with_path(iam, make_profile, account, path):
    name = uniq("prof")
    p = make_profile(name, Path=path)
    assert p["Path"] == path
    assert p["Arn"] == f"arn:aws:iam::{account}:instance-profile{path}{name}"
    got = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    for k in ("InstanceProfileName", "InstanceProfileId", "Arn", "Path", "CreateDate"):
        assert got[k] == p[k], k
    assert got["Roles"] == []


def test_create_instance_profile_duplicate(iam, make_profile):
    name = make_profile()["InstanceProfileName"]
    with pytest.raises(ClientError) as e:
        iam.create_instance_profile(InstanceProfileName=name)
    assert err(e) == ("EntityAlreadyExists", 409)
    assert name in msg(e)


def test_get_instance_profile_unknown(iam):
    name = uniq("nope")
    with pytest.raises(ClientError) as e:
        iam.get_instance_profile(InstanceProfileName=name)
    assert err(e) == ("NoSuchEntity", 404)
    assert name in msg(e)


def test_add_role_to_instance_profile(iam, make_role, make_profile):
    role = make_role(Description="for the profile")
    prof = make_profile()["InstanceProfileName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=role["RoleName"])
    got = iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]
    assert len(got["Roles"]) == 1
    r = got["Roles"][0]
    assert r["RoleName"] == role["RoleName"]
    assert r["Arn"] == role["Arn"]
    assert r["RoleId"] == role["RoleId"]
    assert r["Path"] == role["Path"]
    assert r["AssumeRolePolicyDocument"] == EC2_TRUST


def test_add_second_role_limit_exceeded(iam, make_role, make_profile):
    first, second = make_role()["RoleName"], make_role()["RoleName"]
    prof = make_profile()["InstanceProfileName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=first)
    with pytest.raises(ClientError) as e:
        iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=second)
    assert err(e) == ("LimitExceeded", 409)
    assert "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1" in msg(e)
    got = iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [first]


def test_add_unknown_role_to_instance_profile(iam, make_profile):
    prof = make_profile()["InstanceProfileName"]
    with pytest.raises(ClientError) as e:
        iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=uniq("nope"))
    assert err(e) == ("NoSuchEntity", 404)
    assert iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]["Roles"] == []


def test_add_role_to_unknown_instance_profile(iam, make_role):
    role = make_role()["RoleName"]
    with pytest.raises(ClientError) as e:
        iam.add_role_to_instance_profile(InstanceProfileName=uniq("nope"), RoleName=role)
    assert err(e) == ("NoSuchEntity", 404)


def test_list_instance_profiles(iam, make_role, make_profile):
    role = make_role()
    a = make_profile()
    b = make_profile()
    iam.add_role_to_instance_profile(InstanceProfileName=a["InstanceProfileName"], RoleName=role["RoleName"])
    got = {}
    for page in iam.get_paginator("list_instance_profiles").paginate():
        got.update({p["InstanceProfileName"]: p for p in page["InstanceProfiles"]})
    assert {a["InstanceProfileName"], b["InstanceProfileName"]} <= set(got)
    ga = got[a["InstanceProfileName"]]
    assert ga["Arn"] == a["Arn"]
    assert ga["InstanceProfileId"] == a["InstanceProfileId"]
    assert [x["RoleName"] for x in ga["Roles"]] == [role["RoleName"]]
    assert ga["Roles"][0]["Arn"] == role["Arn"]
    assert got[b["InstanceProfileName"]]["Roles"] == []


@moto_gap("ListInstanceProfiles ignores PathPrefix")
def test_list_instance_profiles_path_prefix(iam, make_profile, path):
    a = make_profile(Path=path)
    b = make_profile(Path=path + "sub/")
    other = make_profile()  # path "/"
    r = iam.list_instance_profiles(PathPrefix=path)
    names = {p["InstanceProfileName"] for p in r["InstanceProfiles"]}
    assert names == {a["InstanceProfileName"], b["InstanceProfileName"]}
    assert other["InstanceProfileName"] not in names
    assert r["IsTruncated"] is False
    r = iam.list_instance_profiles(PathPrefix=path + "sub/")
    assert [p["InstanceProfileName"] for p in r["InstanceProfiles"]] == [b["InstanceProfileName"]]


def test_list_instance_profiles_for_role(iam, make_role, make_profile):
    role = make_role()["RoleName"]
    lonely = make_role()["RoleName"]
    p1 = make_profile()["InstanceProfileName"]
    p2 = make_profile()["InstanceProfileName"]
    make_profile()  # unrelated
    iam.add_role_to_instance_profile(InstanceProfileName=p1, RoleName=role)
    iam.add_role_to_instance_profile(InstanceProfileName=p2, RoleName=role)
    got = iam.list_instance_profiles_for_role(RoleName=role)
    assert sorted(p["InstanceProfileName"] for p in got["InstanceProfiles"]) == sorted([p1, p2])
    for p in got["InstanceProfiles"]:
        assert [r["RoleName"] for r in p["Roles"]] == [role]
    assert iam.list_instance_profiles_for_role(RoleName=lonely)["InstanceProfiles"] == []


@moto_gap("ListInstanceProfilesForRole omits IsTruncated")
def test_list_instance_profiles_for_role_is_truncated(iam, make_role, make_profile):
    role = make_role()["RoleName"]
    prof = make_profile()["InstanceProfileName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=role)
    got = iam.list_instance_profiles_for_role(RoleName=role)
    assert got["IsTruncated"] is False
    assert "Marker" not in got


@moto_gap("ListInstanceProfilesForRole returns an empty list for an unknown role")
def test_list_instance_profiles_for_unknown_role(iam):
    with pytest.raises(ClientError) as e:
        iam.list_instance_profiles_for_role(RoleName=uniq("nope"))
    assert err(e) == ("NoSuchEntity", 404)


def test_remove_role_from_instance_profile(iam, make_role, make_profile):
    role = make_role()["RoleName"]
    prof = make_profile()["InstanceProfileName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=role)
    iam.remove_role_from_instance_profile(InstanceProfileName=prof, RoleName=role)
    assert iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]["Roles"] == []
    assert iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"] == []
    # the slot is free again: another role fits
    other = make_role()["RoleName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=other)
    got = iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [other]


def test_remove_role_from_unknown_instance_profile(iam, make_role):
    role = make_role()["RoleName"]
    with pytest.raises(ClientError) as e:
        iam.remove_role_from_instance_profile(InstanceProfileName=uniq("nope"), RoleName=role)
    assert err(e) == ("NoSuchEntity", 404)


def test_delete_instance_profile(iam, make_profile, path):
    name = make_profile(Path=path)["InstanceProfileName"]
    iam.delete_instance_profile(InstanceProfileName=name)
    with pytest.raises(ClientError) as e:
        iam.get_instance_profile(InstanceProfileName=name)
    assert err(e) == ("NoSuchEntity", 404)
    assert iam.list_instance_profiles(PathPrefix=path)["InstanceProfiles"] == []


def test_delete_instance_profile_with_role(iam, make_role, make_profile):
    role = make_role()["RoleName"]
    prof = make_profile()["InstanceProfileName"]
    iam.add_role_to_instance_profile(InstanceProfileName=prof, RoleName=role)
    with pytest.raises(ClientError) as e:
        iam.delete_instance_profile(InstanceProfileName=prof)
    assert err(e) == ("DeleteConflict", 409)
    got = iam.get_instance_profile(InstanceProfileName=prof)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    iam.remove_role_from_instance_profile(InstanceProfileName=prof, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=prof)
    with pytest.raises(ClientError) as e:
        iam.get_instance_profile(InstanceProfileName=prof)
    assert err(e) == ("NoSuchEntity", 404)
    # the role itself survives
    assert iam.get_role(RoleName=role)["Role"]["RoleName"] == role


def test_delete_instance_profile_unknown(iam):
    with pytest.raises(ClientError) as e:
        iam.delete_instance_profile(InstanceProfileName=uniq("nope"))
    assert err(e) == ("NoSuchEntity", 404)


# --- account id -------------------------------------------------------------------

def test_arns_use_caller_account(client, make_role, make_profile):
    account = client("sts").get_caller_identity()["Account"]
    role = make_role()
    prof = make_profile()
    assert role["Arn"].split(":")[4] == account
    assert prof["Arn"].split(":")[4] == account
    assert role["Arn"].startswith("arn:aws:iam::") and prof["Arn"].startswith("arn:aws:iam::")


# --- aws CLI ----------------------------------------------------------------------

def test_cli_get_role(aws, make_role, account, path):
    name = uniq("role")
    make_role(name, Path=path, Description="via cli")
    out = aws("iam", "get-role", "--role-name", name)
    r = out["Role"]
    assert r["RoleName"] == name
    assert r["Path"] == path
    assert r["Arn"] == f"arn:aws:iam::{account}:role{path}{name}"
    assert r["RoleId"].startswith("AROA")
    assert r["Description"] == "via cli"
    assert r["AssumeRolePolicyDocument"] == EC2_TRUST
    p = aws("iam", "get-role", "--role-name", uniq("nope"), check=False)
    assert p.returncode != 0
    assert "NoSuchEntity" in p.stderr


READ_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::site/*"}],
}


def test_inline_role_policies(iam, make_role):
    # PutRolePolicy / GetRolePolicy / ListRolePolicies / DeleteRolePolicy; a role with
    # inline policies cannot be deleted ("must delete policies first").
    role = make_role()["RoleName"]
    iam.put_role_policy(RoleName=role, PolicyName="read-site", PolicyDocument=json.dumps(READ_BUCKET))
    got = iam.get_role_policy(RoleName=role, PolicyName="read-site")
    assert (got["RoleName"], got["PolicyName"]) == (role, "read-site")
    assert got["PolicyDocument"] == READ_BUCKET  # botocore decodes IAM's URL-encoded JSON
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["read-site"]
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName=role)
    assert err(e) == ("DeleteConflict", 409)
    with pytest.raises(ClientError) as e:
        iam.get_role_policy(RoleName=role, PolicyName="nope")
    assert err(e) == ("NoSuchEntity", 404)
    with pytest.raises(ClientError) as e:
        iam.put_role_policy(RoleName=role, PolicyName="bad", PolicyDocument="{not json")
    assert err(e)[0] == "MalformedPolicyDocument"
    with pytest.raises(ClientError) as e:
        iam.put_role_policy(RoleName=uniq("missing"), PolicyName="p", PolicyDocument=json.dumps(READ_BUCKET))
    assert err(e) == ("NoSuchEntity", 404)
    iam.delete_role_policy(RoleName=role, PolicyName="read-site")
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    iam.delete_role(RoleName=role)
