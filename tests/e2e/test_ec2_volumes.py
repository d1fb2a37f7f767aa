"""EC2, block storage: EBS volumes (create / describe / modify / delete), snapshots,
images (only what AWS guarantees for an account that has made none), and tags on
volumes and snapshots. Driven through boto3 (query protocol) and the aws CLI,
asserting what the EC2 API reference documents.

Written before nimbus's volume/snapshot/image API and validated against moto
(NIMBUS_E2E_ENDPOINT=http://127.0.0.1:PORT NIMBUS_E2E_PEER=moto); the checks where
moto departs from documented AWS behaviour are marked `moto_gap` and stay strict
for nimbus. There are no instances, so nothing here attaches a volume. Every test
makes its own uniquely tagged resources and deletes them again.

State transitions are asynchronous on AWS (creating -> available, pending ->
completed, modifying -> optimizing -> completed, deleting -> gone), so the tests
accept the in-between states in create responses and wait/poll for the final one.
"""
import datetime
import re
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from s3_helpers import ON_MOTO, moto_gap  # noqa: F401  (peer detection lives there)

AZ = "us-east-1a"
FAST = {"Delay": 1, "MaxAttempts": 60}  # waiter config: poll every second, up to a minute
VOL_ID = re.compile(r"^vol-[0-9a-f]{8}([0-9a-f]{9})?$")
SNAP_ID = re.compile(r"^snap-[0-9a-f]{8}([0-9a-f]{9})?$")


# --- helpers / fixtures ---------------------------------------------------------

def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def fake_id(prefix):
    """A well-formed id (17 hex digits) that names nothing."""
    return f"{prefix}-0{uuid.uuid4().hex[:16]}"


def tagspec(rtype, **tags):
    return [{"ResourceType": rtype, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def tag_filter(key, *values):
    return [{"Name": f"tag:{key}", "Values": list(values)}]


def create_volume_fails(ec2, **kw):
    """CreateVolume(**kw), expected to fail; returns the ClientError. A volume that
    gets made anyway is deleted before the test fails."""
    try:
        r = ec2.create_volume(**kw)
    except ClientError as e:
        return e
    ec2.delete_volume(VolumeId=r["VolumeId"])
    pytest.fail(f"CreateVolume({kw}) succeeded")


def code_status(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def poll(fn, ok, timeout=30, interval=0.5):
    """Calls fn() until ok(result) holds; returns the last result."""
    deadline = time.time() + timeout
    while True:
        r = fn()
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(interval)


@pytest.fixture
def ec2(client):
    return client("ec2")


@pytest.fixture
def account(ec2):
    """The caller's account id, as OwnerId of its default security group."""
    g = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    return g["OwnerId"]


@pytest.fixture
def make_volume(ec2):
    """make_volume(**create_kwargs) -> the CreateVolume response; every volume made is
    deleted afterwards (a test that deletes one itself is fine)."""
    made = []

    def make(**kw):
        kw.setdefault("AvailabilityZone", AZ)
        kw.setdefault("Size", 8)
        r = ec2.create_volume(**kw)
        made.append(r["VolumeId"])
        return r

    yield make
    for vid in made:
        try:
            ec2.delete_volume(VolumeId=vid)
        except ClientError:
            pass


@pytest.fixture
def make_snapshot(ec2):
    """make_snapshot(volume_id, **kw) -> the CreateSnapshot response; deleted afterwards."""
    made = []

    def make(volume_id, **kw):
        r = ec2.create_snapshot(VolumeId=volume_id, **kw)
        made.append(r["SnapshotId"])
        return r

    yield make
    for sid in made:
        try:
            ec2.delete_snapshot(SnapshotId=sid)
        except ClientError:
            pass


def volume(ec2, vid):
    return ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def snapshot(ec2, sid):
    return ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]


def wait_available(ec2, *vids):
    ec2.get_waiter("volume_available").wait(VolumeIds=list(vids), WaiterConfig=FAST)


def wait_completed(ec2, *sids):
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=list(sids), WaiterConfig=FAST)


def gone(fn):
    """Polls fn() (a Describe* call for one deleted id) until it raises; returns the error code."""
    deadline = time.time() + 30
    while True:
        try:
            r = fn()
        except ClientError as e:
            return e.response["Error"]["Code"]
        # AWS may show a deleted volume as "deleting"/"deleted" for a short while
        if time.time() > deadline:
            return f"still described: {r}"
        time.sleep(0.5)


# --- 1. CreateVolume -------------------------------------------------------------------------

def test_create_volume(ec2, make_volume):
    r = make_volume(Size=8, AvailabilityZone=AZ)
    vid = r["VolumeId"]
    assert VOL_ID.match(vid)
    assert r["State"] in ("creating", "available")
    assert r["Size"] == 8
    assert r["AvailabilityZone"] == AZ
    assert isinstance(r["CreateTime"], datetime.datetime)
    assert r["Encrypted"] is False

    wait_available(ec2, vid)
    v = volume(ec2, vid)
    assert v["VolumeId"] == vid
    assert v["State"] == "available"
    assert v["Size"] == 8
    assert v["AvailabilityZone"] == AZ
    assert v["Encrypted"] is False
    assert v["Attachments"] == []
    assert isinstance(v["CreateTime"], datetime.datetime)
    assert v.get("SnapshotId", "") == ""  # not made from a snapshot


@moto_gap("DescribeVolumes leaves out MultiAttachEnabled")
def test_volume_multi_attach_disabled_by_default(ec2, make_volume):
    vid = make_volume()["VolumeId"]
    assert volume(ec2, vid)["MultiAttachEnabled"] is False


@moto_gap("CreateVolume defaults VolumeType to gp2 instead of gp3, without Iops/Throughput")
def test_create_volume_default_type_is_gp3(ec2, make_volume):
    r = make_volume()
    assert r["VolumeType"] == "gp3"
    v = volume(ec2, r["VolumeId"])
    assert (v["VolumeType"], v["Iops"], v["Throughput"]) == ("gp3", 3000, 125)


def test_create_volume_explicit_gp3(ec2, make_volume):
    vid = make_volume(VolumeType="gp3")["VolumeId"]
    wait_available(ec2, vid)
    v = volume(ec2, vid)
    assert v["VolumeType"] == "gp3"
    assert v["Size"] == 8


def test_create_volume_gp2(ec2, make_volume):
    r = make_volume(VolumeType="gp2", Size=8)
    assert r["VolumeType"] == "gp2"
    wait_available(ec2, r["VolumeId"])
    v = volume(ec2, r["VolumeId"])
    assert v["VolumeType"] == "gp2"
    assert v["Size"] == 8


@moto_gap("gp2 volumes have no Iops (AWS: 3 IOPS/GiB, at least 100)")
def test_create_volume_gp2_baseline_iops(ec2, make_volume):
    vid = make_volume(VolumeType="gp2", Size=8)["VolumeId"]
    v = volume(ec2, vid)
    assert v["Iops"] == 100  # max(100, 3 * 8)
    assert "Throughput" not in v


def test_create_volume_io1_with_iops(ec2, make_volume):
    r = make_volume(VolumeType="io1", Size=8, Iops=200)
    assert r["VolumeType"] == "io1"
    assert r["Iops"] == 200
    wait_available(ec2, r["VolumeId"])
    v = volume(ec2, r["VolumeId"])
    assert v["VolumeType"] == "io1"
    assert v["Iops"] == 200


def test_create_volume_encrypted(ec2, make_volume):
    r = make_volume(Encrypted=True)
    assert r["Encrypted"] is True
    wait_available(ec2, r["VolumeId"])
    v = volume(ec2, r["VolumeId"])
    assert v["Encrypted"] is True


def test_create_volume_encrypted_default_key(ec2, make_volume):
    v = volume(ec2, make_volume(Encrypted=True)["VolumeId"])
    assert v["KmsKeyId"].startswith("arn:aws:kms:us-east-1:")


def test_create_volume_with_tags(ec2, make_volume):
    key = uniq("k")
    r = make_volume(TagSpecifications=tagspec("volume", **{key: "v1", "Name": key}))
    assert {(t["Key"], t["Value"]) for t in r.get("Tags", [])} == {(key, "v1"), ("Name", key)}
    v = volume(ec2, r["VolumeId"])
    assert {(t["Key"], t["Value"]) for t in v["Tags"]} == {(key, "v1"), ("Name", key)}


@moto_gap("CreateVolume without AvailabilityZone succeeds")
def test_create_volume_missing_zone(ec2):
    e = create_volume_fails(ec2, Size=8)
    assert code_status(e) == ("MissingParameter", 400)


@moto_gap("CreateVolume accepts an availability zone that does not exist")
def test_create_volume_unknown_zone(ec2):
    e = create_volume_fails(ec2, Size=8, AvailabilityZone="us-east-1z")
    # AWS answers InvalidZone.NotFound ("The zone 'us-east-1z' does not exist.");
    # InvalidParameterValue is accepted too.
    assert code_status(e) in (("InvalidZone.NotFound", 400), ("InvalidParameterValue", 400))


@moto_gap("CreateVolume does not validate Size against the volume type's range")
@pytest.mark.parametrize("size", [0, 16385])
def test_create_volume_bad_size(ec2, size):
    e = create_volume_fails(ec2, Size=size, AvailabilityZone=AZ, VolumeType="gp3")
    assert code_status(e) == ("InvalidParameterValue", 400)


def test_create_volume_from_snapshot(ec2, make_volume, make_snapshot):
    src = make_volume(Size=8)["VolumeId"]
    wait_available(ec2, src)
    sid = make_snapshot(src)["SnapshotId"]
    wait_completed(ec2, sid)

    r = ec2.create_volume(SnapshotId=sid, AvailabilityZone=AZ)
    try:
        assert r["SnapshotId"] == sid
        assert r["Size"] == 8  # defaults to the snapshot's size
        wait_available(ec2, r["VolumeId"])
        v = volume(ec2, r["VolumeId"])
        assert v["SnapshotId"] == sid
        assert v["Size"] == 8

        # a bigger volume than the snapshot is fine
        big = ec2.create_volume(SnapshotId=sid, AvailabilityZone=AZ, Size=12)
        try:
            assert big["Size"] == 12
            assert big["SnapshotId"] == sid
        finally:
            wait_available(ec2, big["VolumeId"])
            ec2.delete_volume(VolumeId=big["VolumeId"])
    finally:
        wait_available(ec2, r["VolumeId"])
        ec2.delete_volume(VolumeId=r["VolumeId"])


@moto_gap("CreateVolume accepts a Size smaller than the snapshot's")
def test_create_volume_from_snapshot_too_small(ec2, make_volume, make_snapshot):
    src = make_volume(Size=8)["VolumeId"]
    wait_available(ec2, src)
    sid = make_snapshot(src)["SnapshotId"]
    wait_completed(ec2, sid)
    e = create_volume_fails(ec2, SnapshotId=sid, AvailabilityZone=AZ, Size=4)
    assert code_status(e) == ("InvalidParameterValue", 400)


def test_create_volume_from_unknown_snapshot(ec2):
    e = create_volume_fails(ec2, SnapshotId=fake_id("snap"), AvailabilityZone=AZ)
    assert code_status(e) == ("InvalidSnapshot.NotFound", 400)


# --- 2. DescribeVolumes ----------------------------------------------------------------------

def test_describe_volumes_by_ids(ec2, make_volume):
    a = make_volume(Size=8)["VolumeId"]
    b = make_volume(Size=9)["VolumeId"]
    vols = ec2.describe_volumes(VolumeIds=[a, b])["Volumes"]
    assert {v["VolumeId"]: v["Size"] for v in vols} == {a: 8, b: 9}
    assert [v["VolumeId"] for v in ec2.describe_volumes(VolumeIds=[b])["Volumes"]] == [b]


def test_describe_volumes_unknown_id(ec2, make_volume):
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[fake_id("vol")])
    assert err(e) == ("InvalidVolume.NotFound", 400)
    # one unknown id among known ones fails the whole call
    vid = make_volume()["VolumeId"]
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[vid, fake_id("vol")])
    assert err(e) == ("InvalidVolume.NotFound", 400)


def test_describe_volumes_filters(ec2, make_volume):
    key = uniq("f")
    a = make_volume(Size=8, VolumeType="gp3", TagSpecifications=tagspec("volume", **{key: "a"}))["VolumeId"]
    b = make_volume(Size=10, VolumeType="gp2", TagSpecifications=tagspec("volume", **{key: "b"}))["VolumeId"]
    wait_available(ec2, a, b)

    def ids(*filters):
        fs = [{"Name": n, "Values": list(vs)} for n, vs in filters]
        fs.append({"Name": "tag-key", "Values": [key]})  # only this test's volumes
        return {v["VolumeId"] for v in ec2.describe_volumes(Filters=fs)["Volumes"]}

    assert ids() == {a, b}
    assert ids(("volume-id", [a])) == {a}
    assert ids(("volume-id", [a, b])) == {a, b}
    assert ids(("status", ["available"])) == {a, b}
    assert ids(("status", ["in-use", "deleting"])) == set()
    assert ids(("size", ["10"])) == {b}
    assert ids(("size", ["8", "10"])) == {a, b}
    assert ids(("availability-zone", [AZ])) == {a, b}
    assert ids(("availability-zone", ["us-east-1b"])) == set()
    assert ids(("volume-type", ["gp3"])) == {a}
    assert ids(("volume-type", ["gp2"])) == {b}
    assert ids((f"tag:{key}", ["b"])) == {b}
    assert ids((f"tag:{key}", ["a", "b"])) == {a, b}
    assert ids((f"tag:{key}", ["c"])) == set()
    assert ids(("attachment.status", ["attached"])) == set()  # nothing is attached
    # filters are ANDed
    assert ids(("size", ["8"]), ("volume-type", ["gp2"])) == set()

    # tag:KEY alone (no tag-key helper filter)
    tagged = ec2.describe_volumes(Filters=tag_filter(key, "a"))["Volumes"]
    assert [v["VolumeId"] for v in tagged] == [a]


@moto_gap("DescribeVolumes ignores MaxResults and never returns a NextToken")
def test_describe_volumes_pagination(ec2, make_volume):
    key = uniq("page")
    made = {make_volume(TagSpecifications=tagspec("volume", **{key: "1"}))["VolumeId"] for _ in range(7)}
    seen, pages, token = [], 0, None
    while True:
        kw = {"Filters": [{"Name": "tag-key", "Values": [key]}], "MaxResults": 5}
        if token:
            kw["NextToken"] = token
        r = ec2.describe_volumes(**kw)
        pages += 1
        assert len(r["Volumes"]) <= 5
        seen += [v["VolumeId"] for v in r["Volumes"]]
        token = r.get("NextToken")
        if not token:
            break
        assert pages < 20
    assert len(seen) == len(set(seen))  # no volume twice
    assert set(seen) == made
    assert pages >= 2

    pager = ec2.get_paginator("describe_volumes")
    ids = [v["VolumeId"]
           for page in pager.paginate(Filters=[{"Name": "tag-key", "Values": [key]}],
                                      PaginationConfig={"PageSize": 5})
           for v in page["Volumes"]]
    assert sorted(ids) == sorted(made)


@moto_gap("DescribeVolumes accepts MaxResults below 5")
def test_describe_volumes_max_results_too_small(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(MaxResults=4)
    assert err(e) == ("InvalidParameterValue", 400)


# --- 3. ModifyVolume -------------------------------------------------------------------------

def test_modify_volume_grow(ec2, make_volume):
    vid = make_volume(Size=8)["VolumeId"]
    wait_available(ec2, vid)
    m = ec2.modify_volume(VolumeId=vid, Size=16)["VolumeModification"]
    assert m["VolumeId"] == vid
    assert m["ModificationState"] in ("modifying", "optimizing", "completed")
    assert m["OriginalSize"] == 8
    assert m["TargetSize"] == 16
    assert isinstance(m["StartTime"], datetime.datetime)

    v = poll(lambda: volume(ec2, vid), lambda v: v["Size"] == 16)
    assert v["Size"] == 16

    mods = ec2.describe_volumes_modifications(VolumeIds=[vid])["VolumesModifications"]
    assert len(mods) == 1
    assert mods[0]["VolumeId"] == vid
    assert mods[0]["OriginalSize"] == 8
    assert mods[0]["TargetSize"] == 16
    assert mods[0]["ModificationState"] in ("modifying", "optimizing", "completed")


@moto_gap("ModifyVolume lets a volume shrink")
def test_modify_volume_shrink(ec2, make_volume):
    vid = make_volume(Size=8)["VolumeId"]
    wait_available(ec2, vid)
    with pytest.raises(ClientError) as e:
        ec2.modify_volume(VolumeId=vid, Size=4)
    assert err(e) == ("InvalidParameterValue", 400)
    assert "smaller" in e.value.response["Error"]["Message"]
    assert volume(ec2, vid)["Size"] == 8


def test_modify_unknown_volume(ec2):
    with pytest.raises(ClientError) as e:
        ec2.modify_volume(VolumeId=fake_id("vol"), Size=16)
    assert err(e) == ("InvalidVolume.NotFound", 400)


# --- 4. DeleteVolume -------------------------------------------------------------------------

def test_delete_volume(ec2):
    vid = ec2.create_volume(Size=8, AvailabilityZone=AZ)["VolumeId"]
    wait_available(ec2, vid)
    r = ec2.delete_volume(VolumeId=vid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert gone(lambda: ec2.describe_volumes(VolumeIds=[vid])) == "InvalidVolume.NotFound"
    # and a volume-id filter no longer matches it
    vols = ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vid]}])["Volumes"]
    assert all(v["State"] in ("deleting", "deleted") for v in vols)


def test_delete_unknown_volume(ec2):
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=fake_id("vol"))
    assert err(e) == ("InvalidVolume.NotFound", 400)


# --- 5. snapshots ---------------------------------------------------------------------------

def test_create_snapshot(ec2, make_volume, make_snapshot, account):
    vid = make_volume(Size=8)["VolumeId"]
    wait_available(ec2, vid)
    key = uniq("s")
    r = make_snapshot(vid, Description="nimbus e2e " + key,
                      TagSpecifications=tagspec("snapshot", **{key: "x"}))
    sid = r["SnapshotId"]
    assert SNAP_ID.match(sid)
    assert r["State"] in ("pending", "completed")
    assert r["VolumeId"] == vid
    assert r["VolumeSize"] == 8
    assert r["Description"] == "nimbus e2e " + key
    assert isinstance(r["StartTime"], datetime.datetime)
    assert r["OwnerId"] == account
    assert re.fullmatch(r"\d{12}", r["OwnerId"])
    assert r["Encrypted"] is False
    assert {(t["Key"], t["Value"]) for t in r.get("Tags", [])} == {(key, "x")}

    wait_completed(ec2, sid)
    s = snapshot(ec2, sid)
    assert s["State"] == "completed"
    assert s["VolumeId"] == vid
    assert s["VolumeSize"] == 8
    assert s["OwnerId"] == account
    assert s["Description"] == "nimbus e2e " + key
    assert {(t["Key"], t["Value"]) for t in s["Tags"]} == {(key, "x")}


def test_snapshot_progress(ec2, make_volume, make_snapshot):
    vid = make_volume()["VolumeId"]
    wait_available(ec2, vid)
    sid = make_snapshot(vid)["SnapshotId"]
    wait_completed(ec2, sid)
    assert snapshot(ec2, sid)["Progress"] == "100%"


def test_describe_snapshots(ec2, make_volume, make_snapshot):
    key = uniq("s")
    va = make_volume()["VolumeId"]
    vb = make_volume()["VolumeId"]
    wait_available(ec2, va, vb)
    a = make_snapshot(va, TagSpecifications=tagspec("snapshot", **{key: "a"}))["SnapshotId"]
    b = make_snapshot(vb, TagSpecifications=tagspec("snapshot", **{key: "b"}))["SnapshotId"]
    wait_completed(ec2, a, b)

    mine = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert {a, b} <= mine
    assert {s["SnapshotId"] for s in ec2.describe_snapshots(SnapshotIds=[a, b])["Snapshots"]} == {a, b}

    def ids(*filters):
        fs = [{"Name": n, "Values": list(vs)} for n, vs in filters]
        fs.append({"Name": "tag-key", "Values": [key]})
        return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=fs)["Snapshots"]}

    assert ids() == {a, b}
    assert ids(("volume-id", [va])) == {a}
    assert ids(("status", ["completed"])) == {a, b}
    assert ids(("status", ["error"])) == set()
    assert ids((f"tag:{key}", ["b"])) == {b}
    by_tag = ec2.describe_snapshots(Filters=tag_filter(key, "a"))["Snapshots"]
    assert [s["SnapshotId"] for s in by_tag] == [a]


def test_describe_unknown_snapshot(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_snapshots(SnapshotIds=[fake_id("snap")])
    assert err(e) == ("InvalidSnapshot.NotFound", 400)


def test_create_snapshot_unknown_volume(ec2):
    with pytest.raises(ClientError) as e:
        ec2.create_snapshot(VolumeId=fake_id("vol"))
    assert err(e) == ("InvalidVolume.NotFound", 400)


def test_delete_snapshot(ec2, make_volume):
    vid = make_volume()["VolumeId"]
    wait_available(ec2, vid)
    sid = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
    wait_completed(ec2, sid)
    r = ec2.delete_snapshot(SnapshotId=sid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert gone(lambda: ec2.describe_snapshots(SnapshotIds=[sid])) == "InvalidSnapshot.NotFound"
    # a deleted snapshot cannot seed a volume
    e = create_volume_fails(ec2, SnapshotId=sid, AvailabilityZone=AZ)
    assert code_status(e) == ("InvalidSnapshot.NotFound", 400)


def test_delete_unknown_snapshot(ec2):
    with pytest.raises(ClientError) as e:
        ec2.delete_snapshot(SnapshotId=fake_id("snap"))
    assert err(e) == ("InvalidSnapshot.NotFound", 400)


def test_volume_outlives_its_snapshot_and_vice_versa(ec2, make_volume, make_snapshot):
    # deleting a volume leaves its snapshots; deleting a snapshot leaves volumes made from it
    vid = ec2.create_volume(Size=8, AvailabilityZone=AZ)["VolumeId"]
    wait_available(ec2, vid)
    sid = make_snapshot(vid)["SnapshotId"]
    wait_completed(ec2, sid)
    ec2.delete_volume(VolumeId=vid)
    s = snapshot(ec2, sid)
    assert s["VolumeId"] == vid and s["State"] == "completed"

    child = make_volume(SnapshotId=sid, Size=8)["VolumeId"]
    wait_available(ec2, child)
    ec2.delete_snapshot(SnapshotId=sid)
    assert volume(ec2, child)["State"] == "available"


# --- 6. images -------------------------------------------------------------------------------

def test_describe_images_self(ec2, account):
    # this suite registers no images; whatever Owners=["self"] lists must be the caller's
    imgs = ec2.describe_images(Owners=["self"])["Images"]
    assert isinstance(imgs, list)
    assert all(i["OwnerId"] == account for i in imgs)


def test_describe_images_unknown_id(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=["ami-00000000000000000"])
    assert err(e) == ("InvalidAMIID.NotFound", 400)


def test_describe_images_name_filter(ec2):
    r = ec2.describe_images(Filters=[{"Name": "name", "Values": [uniq("no-such-image")]}])
    assert r["Images"] == []
    r = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["*"]}])
    assert isinstance(r["Images"], list)


# --- 7. tags on volumes and snapshots -------------------------------------------------------

def test_tags_on_volume(ec2, make_volume):
    vid = make_volume()["VolumeId"]
    key = uniq("tk")
    ec2.create_tags(Resources=[vid], Tags=[{"Key": key, "Value": "one"}, {"Key": "Name", "Value": key}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vid]}])["Tags"]
    assert {(t["Key"], t["Value"], t["ResourceType"], t["ResourceId"]) for t in tags} == {
        (key, "one", "volume", vid), ("Name", key, "volume", vid)}

    by_type = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["volume"]},
                                         {"Name": "key", "Values": [key]}])["Tags"]
    assert [(t["ResourceId"], t["Value"]) for t in by_type] == [(vid, "one")]
    assert ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["snapshot"]},
                                      {"Name": "key", "Values": [key]}])["Tags"] == []

    # overwrite, then delete
    ec2.create_tags(Resources=[vid], Tags=[{"Key": key, "Value": "two"}])
    assert {t["Key"]: t["Value"] for t in volume(ec2, vid)["Tags"]}[key] == "two"
    ec2.delete_tags(Resources=[vid], Tags=[{"Key": key}])
    assert [t["Key"] for t in volume(ec2, vid).get("Tags", [])] == ["Name"]
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"] == []


def test_tags_on_snapshot(ec2, make_volume, make_snapshot):
    vid = make_volume()["VolumeId"]
    wait_available(ec2, vid)
    sid = make_snapshot(vid)["SnapshotId"]
    key = uniq("tk")
    ec2.create_tags(Resources=[sid, vid], Tags=[{"Key": key, "Value": "both"}])
    tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"]
    assert {(t["ResourceId"], t["ResourceType"]) for t in tags} == {(sid, "snapshot"), (vid, "volume")}
    snap_tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["snapshot"]},
                                           {"Name": "key", "Values": [key]}])["Tags"]
    assert [(t["ResourceId"], t["Value"]) for t in snap_tags] == [(sid, "both")]
    assert {t["Key"]: t["Value"] for t in snapshot(ec2, sid)["Tags"]} == {key: "both"}
    ec2.delete_tags(Resources=[sid], Tags=[{"Key": key, "Value": "both"}])
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [sid]}])["Tags"] == []


def test_create_tags_unknown_volume(ec2):
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[fake_id("vol")], Tags=[{"Key": "k", "Value": "v"}])
    assert err(e) == ("InvalidVolume.NotFound", 400)


# --- 8. the aws CLI -------------------------------------------------------------------------

def test_cli_volume_roundtrip(aws):
    key = uniq("cli")
    out = aws("ec2", "create-volume", "--size", "8", "--availability-zone", AZ,
              "--volume-type", "gp3",
              "--tag-specifications", f"ResourceType=volume,Tags=[{{Key={key},Value=1}}]")
    vid = out["VolumeId"]
    try:
        assert VOL_ID.match(vid)
        assert out["State"] in ("creating", "available")
        # (`aws ec2 wait volume-available` polls every 15 s; poll faster by hand)
        vols = poll(lambda: aws("ec2", "describe-volumes", "--filters", f"Name=tag:{key},Values=1")["Volumes"],
                    lambda vs: vs and vs[0]["State"] == "available")
        assert [(v["VolumeId"], v["Size"], v["State"]) for v in vols] == [(vid, 8, "available")]
    finally:
        aws("ec2", "delete-volume", "--volume-id", vid)
    p = poll(lambda: aws("ec2", "describe-volumes", "--volume-ids", vid, check=False),
             lambda p: p.returncode != 0)
    assert p.returncode != 0 and "InvalidVolume.NotFound" in p.stderr
