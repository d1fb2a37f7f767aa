"""EC2, compute: instances. RunInstances (response shape, counts, placement in a subnet,
security groups, key pair, tags on the instance and its root volume, IAM instance
profile, user data), the errors AWS documents for bad launches and bad instance ids,
the state machine (Stop / Start / Reboot / Terminate, driven with boto3's waiters),
ModifyInstanceAttribute / DescribeInstanceAttribute, DescribeInstanceStatus,
DescribeInstances filters and pagination, tags on instances, GetConsoleOutput.
Driven through boto3 (query protocol) and the aws CLI, asserting what the EC2 API
reference documents.

Written before nimbus's instance API and validated against moto
(NIMBUS_E2E_ENDPOINT=http://127.0.0.1:PORT NIMBUS_E2E_PEER=moto); the checks where
moto departs from documented AWS behaviour are marked `moto_gap` and stay strict
for nimbus. Nothing here needs a process inside the instance except the console
output check, which only nimbus runs (the user data script echoes a marker).

Isolation and cleanup: every instance is launched with a tag whose value is unique
(TAG_KEY), every Describe call is narrowed by it, and every instance a test launches
is terminated afterwards (the `launch` fixture, or the module fixtures). Read-only
tests share two module-scoped instances (`shared`, `custom`) so the file launches few.

States and their codes (InstanceState): 0 pending, 16 running, 32 shutting-down,
48 terminated, 64 stopping, 80 stopped; only the low byte of Code is meaningful.
Transitions are asynchronous on AWS, so answers of Stop/Terminate accept the
in-between state and the tests wait (FAST waiter config) for the final one.
"""
import base64
import datetime
import ipaddress
import re
import time
import types
import uuid

import pytest
from botocore.exceptions import ClientError, WaiterError

from conftest import aws_cli, make_client
from s3_helpers import ON_MOTO, moto_gap  # noqa: F401  (peer detection lives there)

FAST = {"Delay": 1, "MaxAttempts": 60}  # waiter config: poll every second, up to a minute
TAG_KEY = "nimbus-e2e-instance"         # every instance gets it, with a unique value
INST_ID = re.compile(r"^i-[0-9a-f]{17}$")
RES_ID = re.compile(r"^r-[0-9a-f]{17}$")
VOL_ID = re.compile(r"^vol-[0-9a-f]{8}([0-9a-f]{9})?$")

PENDING, RUNNING, SHUTTING_DOWN, TERMINATED, STOPPING, STOPPED = (
    (0, "pending"), (16, "running"), (32, "shutting-down"), (48, "terminated"),
    (64, "stopping"), (80, "stopped"))


# --- helpers / fixtures ---------------------------------------------------------

def uniq(prefix="i"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def fake_id(prefix):
    """A well-formed id (17 hex digits) that names nothing."""
    return f"{prefix}-0{uuid.uuid4().hex[:16]}"


def tagspec(rtype, **tags):
    return [{"ResourceType": rtype, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def state(s):
    """InstanceState -> (code, name); the high byte of Code is internal and ignored."""
    return s["Code"] & 0xFF, s["Name"]


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


_IMAGES = {}


def image(ec2):
    """The image to launch: nimbus's single base image ("nimbus/host-root"); on another
    emulator an Amazon Linux 2 x86_64 image if there is one, else any image."""
    key = ec2.meta.endpoint_url
    if key not in _IMAGES:
        imgs = ec2.describe_images()["Images"]
        assert imgs, "DescribeImages lists no image to launch"
        pick = ([i for i in imgs if i.get("Name") == "nimbus/host-root"]
                or sorted((i for i in imgs if re.fullmatch(r"amzn2-ami-hvm-[\d.]+-x86_64-gp2", i.get("Name", ""))),
                          key=lambda i: i["Name"])
                or imgs)
        _IMAGES[key] = pick[0]
    return _IMAGES[key]


def image_id(ec2):
    return image(ec2)["ImageId"]


def itypes(ec2):
    """(default, alternative) instance types of the image's architecture."""
    if image(ec2).get("Architecture") == "arm64":
        return "t4g.micro", "t4g.small"
    return "t3.micro", "t2.micro"


def instance(ec2, iid):
    [res] = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    [i] = res["Instances"]
    return i


def tagged(ec2, value, *filters, key=TAG_KEY):
    """Instance ids carrying tag key=value, narrowed by more (name, values) filters."""
    fs = [{"Name": f"tag:{key}", "Values": [value]}]
    fs += [{"Name": n, "Values": list(vs)} for n, vs in filters]
    ids = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=fs):
        for res in page["Reservations"]:
            ids += [i["InstanceId"] for i in res["Instances"]]
    assert len(ids) == len(set(ids)), f"an instance was listed twice: {ids}"
    return set(ids)


def wait(ec2, name, *ids):
    ec2.get_waiter(f"instance_{name}").wait(InstanceIds=list(ids), WaiterConfig=FAST)


def terminate_quietly(ec2, ids, wait_for_it=False):
    ids = [i for i in ids if i]
    if not ids:
        return
    try:
        ec2.terminate_instances(InstanceIds=ids)
    except ClientError:
        for iid in ids:  # one bad id fails the whole call; go one by one
            try:
                ec2.terminate_instances(InstanceIds=[iid])
            except ClientError:
                pass
    if wait_for_it:
        try:
            wait(ec2, "terminated", *ids)
        except (WaiterError, ClientError):
            pass


def poll(fn, ok, timeout=30, interval=0.5):
    """Calls fn() until ok(result) holds; returns the last result."""
    deadline = time.time() + timeout
    while True:
        r = fn()
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(interval)


def volume_gone(ec2, vid, timeout=30):
    """Polls DescribeVolumes for a volume deleted with its instance: True once it is
    gone (InvalidVolume.NotFound) or shown as deleting/deleted."""
    deadline = time.time() + timeout
    while True:
        try:
            vols = ec2.describe_volumes(VolumeIds=[vid])["Volumes"]
        except ClientError as e:
            return e.response["Error"]["Code"] == "InvalidVolume.NotFound"
        if all(v["State"] in ("deleting", "deleted") for v in vols):
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.5)


def run_fails(ec2, **kw):
    """RunInstances(**kw) with a unique tag, expected to fail; returns the ClientError.
    Also checks that no instance carrying the tag was made (terminating any that was)."""
    tag = uniq("fail")
    kw.setdefault("ImageId", image_id(ec2))
    kw.setdefault("InstanceType", itypes(ec2)[0])
    kw.setdefault("MinCount", 1)
    kw.setdefault("MaxCount", 1)
    kw["TagSpecifications"] = tagspec("instance", **{TAG_KEY: tag})
    try:
        r = ec2.run_instances(**kw)
    except ClientError as e:
        made = tagged(ec2, tag)
        terminate_quietly(ec2, list(made))
        assert made == set(), f"the failed RunInstances still made {made}"
        return e
    terminate_quietly(ec2, [i["InstanceId"] for i in r["Instances"]])
    pytest.fail(f"RunInstances({kw}) succeeded")


def code_status(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def ec2(endpoint):
    return make_client(endpoint, "ec2")


@pytest.fixture(scope="module")
def net(ec2):
    """The default VPC, its default subnets (by id and by zone) and its default group."""
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                            {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    [sg] = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                                 {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    return types.SimpleNamespace(
        vpc=vpc["VpcId"], subnets={s["SubnetId"]: s for s in subnets},
        by_zone={s["AvailabilityZone"]: s for s in subnets}, sg=sg["GroupId"], account=sg["OwnerId"])


class Launcher:
    """launch(**run_kwargs) -> namespace(resp, tag, ids, id); the instances carry
    TAG_KEY=<unique tag> and are terminated when the test ends."""

    def __init__(self, ec2):
        self.ec2, self.made = ec2, []

    def __call__(self, tag=None, **kw):
        tag = tag or uniq("t")
        kw.setdefault("ImageId", image_id(self.ec2))
        kw.setdefault("InstanceType", itypes(self.ec2)[0])
        kw.setdefault("MinCount", 1)
        kw.setdefault("MaxCount", 1)
        specs = [dict(s, Tags=list(s["Tags"])) for s in kw.pop("TagSpecifications", [])]
        inst = next((s for s in specs if s["ResourceType"] == "instance"), None)
        if inst is None:
            inst = {"ResourceType": "instance", "Tags": []}
            specs.append(inst)
        inst["Tags"].append({"Key": TAG_KEY, "Value": tag})
        r = self.ec2.run_instances(TagSpecifications=specs, **kw)
        ids = [i["InstanceId"] for i in r["Instances"]]
        self.made += ids
        return types.SimpleNamespace(resp=r, tag=tag, ids=ids, id=ids[0] if ids else None)

    def track(self, *ids):
        self.made += ids

    def cleanup(self, wait_for_it=False):
        terminate_quietly(self.ec2, self.made, wait_for_it)


@pytest.fixture
def launch(ec2):
    launcher = Launcher(ec2)
    yield launcher
    launcher.cleanup()


@pytest.fixture(scope="module")
def module_tag():
    """Value of TAG_KEY on both module instances, and a second key telling them apart."""
    return types.SimpleNamespace(value=uniq("mod"), role_key=uniq("role"))


@pytest.fixture(scope="module")
def shared(ec2, net, module_tag):
    """One instance for read-only tests: default subnet / group, a key pair, user data
    that echoes a marker. Waited to running; terminated at the end of the module."""
    key_name = uniq("kp")
    ec2.create_key_pair(KeyName=key_name)
    marker = uniq("nimbus-console")
    user_data = f"#!/bin/bash\necho {marker}\n"
    launcher = Launcher(ec2)
    name = uniq("shared")
    try:
        started = datetime.datetime.now(datetime.timezone.utc)
        lr = launcher(tag=module_tag.value, KeyName=key_name, UserData=user_data,
                      TagSpecifications=tagspec("instance", **{module_tag.role_key: "shared", "Name": name}))
        wait(ec2, "running", lr.id)
        yield types.SimpleNamespace(resp=lr.resp, id=lr.id, key_name=key_name, marker=marker,
                                    user_data=user_data, name=name, started=started,
                                    tags={TAG_KEY: module_tag.value, module_tag.role_key: "shared", "Name": name})
    finally:
        launcher.cleanup()
        try:
            ec2.delete_key_pair(KeyName=key_name)
        except ClientError:
            pass


@pytest.fixture(scope="module")
def custom(ec2, net, module_tag, shared):
    """One instance launched with explicit options: a default subnet in another zone than
    `shared`'s, a security group of its own, the alternative instance type, tags for the
    instance and for its volumes. Waited to running; terminated at the end."""
    zone = instance(ec2, shared.id)["Placement"]["AvailabilityZone"]
    subnet = next(s for z, s in sorted(net.by_zone.items()) if z != zone)
    sg_name = uniq("web-group")
    sg = ec2.create_security_group(GroupName=sg_name, Description="nimbus e2e instances",
                                   VpcId=net.vpc)["GroupId"]
    vol_key = uniq("vk")
    launcher = Launcher(ec2)
    try:
        lr = launcher(tag=module_tag.value, SubnetId=subnet["SubnetId"], SecurityGroupIds=[sg],
                      InstanceType=itypes(ec2)[1],
                      TagSpecifications=tagspec("instance", **{module_tag.role_key: "custom"})
                      + tagspec("volume", **{vol_key: "root-vol"}))
        wait(ec2, "running", lr.id)
        yield types.SimpleNamespace(resp=lr.resp, id=lr.id, subnet=subnet, sg=sg, sg_name=sg_name,
                                    vol_key=vol_key, itype=itypes(ec2)[1])
    finally:
        launcher.cleanup(wait_for_it=True)  # the group cannot go while an instance uses it
        try:
            ec2.delete_security_group(GroupId=sg)
        except ClientError:
            pass


# --- 1. RunInstances ----------------------------------------------------------------------

def test_run_instances_response(ec2, net, shared):
    r = shared.resp
    assert RES_ID.match(r["ReservationId"])
    assert r["OwnerId"] == net.account
    assert re.fullmatch(r"\d{12}", r["OwnerId"])
    [i] = r["Instances"]
    assert INST_ID.match(i["InstanceId"])
    assert i["ImageId"] == image_id(ec2)
    assert i["InstanceType"] == itypes(ec2)[0]
    assert state(i["State"]) == PENDING
    assert i["AmiLaunchIndex"] == 0
    assert i["KeyName"] == shared.key_name
    # no subnet given: a default subnet of the default VPC, and the instance in its zone
    assert i["SubnetId"] in net.subnets
    assert i["VpcId"] == net.vpc
    assert i["Placement"]["AvailabilityZone"] == net.subnets[i["SubnetId"]]["AvailabilityZone"]
    ip = i["PrivateIpAddress"]
    assert i["PrivateDnsName"] == "ip-{}.ec2.internal".format(ip.replace(".", "-"))  # us-east-1
    assert abs((i["LaunchTime"] - shared.started).total_seconds()) < 300
    assert re.fullmatch(r"/dev/[a-z0-9]+", i["RootDeviceName"])
    assert i["RootDeviceType"] == "ebs"
    assert i["Architecture"] == image(ec2)["Architecture"]


@moto_gap("the primary private IPv4 address is not taken from the subnet's range (10.x for a 172.31/20 subnet)")
def test_private_ip_in_subnet_range(ec2, net, shared, custom):
    # API reference, RunInstances: "If you don't specify this address, we choose one from
    # the IPv4 range of your subnet."
    for r in (shared.resp, custom.resp):
        [i] = r["Instances"]
        cidr = ipaddress.ip_network(net.subnets[i["SubnetId"]]["CidrBlock"])
        assert ipaddress.ip_address(i["PrivateIpAddress"]) in cidr
        assert instance(ec2, i["InstanceId"])["PrivateIpAddress"] == i["PrivateIpAddress"]


@moto_gap("an instance launched without security groups lists none (AWS: the VPC's default group)")
def test_default_security_group_when_none_given(ec2, net, shared):
    # API reference, RunInstances: "If you don't specify a security group ID, we use the
    # default security group for the VPC."
    [i] = shared.resp["Instances"]
    assert i["SecurityGroups"] == [{"GroupId": net.sg, "GroupName": "default"}]
    assert instance(ec2, shared.id)["SecurityGroups"] == [{"GroupId": net.sg, "GroupName": "default"}]


def test_describe_instances_by_id(ec2, net, shared):
    [res] = ec2.describe_instances(InstanceIds=[shared.id])["Reservations"]
    assert res["ReservationId"] == shared.resp["ReservationId"]
    assert res["OwnerId"] == net.account
    [i] = res["Instances"]
    [launched] = shared.resp["Instances"]
    assert i["InstanceId"] == shared.id
    assert state(i["State"]) == RUNNING
    for field in ("ImageId", "InstanceType", "KeyName", "SubnetId", "VpcId", "PrivateIpAddress",
                  "PrivateDnsName", "AmiLaunchIndex", "RootDeviceName", "Architecture", "LaunchTime"):
        assert i[field] == launched[field], field
    assert i["Placement"]["AvailabilityZone"] == launched["Placement"]["AvailabilityZone"]
    assert tags_of(i) == shared.tags


@moto_gap("the root device's block device mapping is named /dev/sda1 while RootDeviceName is /dev/xvda")
def test_root_block_device(ec2, shared):
    i = instance(ec2, shared.id)
    # the root device is one of the mappings, an EBS volume deleted on termination
    [root] = [m for m in i["BlockDeviceMappings"] if m["DeviceName"] == i["RootDeviceName"]]
    ebs = root["Ebs"]
    assert VOL_ID.match(ebs["VolumeId"])
    assert ebs["DeleteOnTermination"] is True
    assert ebs["Status"] == "attached"
    [v] = ec2.describe_volumes(VolumeIds=[ebs["VolumeId"]])["Volumes"]
    assert v["State"] == "in-use"
    assert v["AvailabilityZone"] == i["Placement"]["AvailabilityZone"]
    assert [(a["InstanceId"], a["Device"], a["State"], a["DeleteOnTermination"]) for a in v["Attachments"]] == [
        (shared.id, i["RootDeviceName"], "attached", True)]


@moto_gap("moto's ModifyVolume answer carries no TargetIops or TargetThroughput")
def test_root_volume_snapshot_and_type_change(ec2, shared):
    # A running instance's root volume can be snapshotted (EBS: "You can take a snapshot
    # of an attached volume that is in use") and changed to another type; gp2 -> gp3
    # takes gp3's baseline of 3000 IOPS.
    i = instance(ec2, shared.id)
    [root] = [m for m in i["BlockDeviceMappings"] if m["DeviceName"] == i["RootDeviceName"]]
    vid = root["Ebs"]["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vid, Description="root")
    try:
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap["SnapshotId"]], WaiterConfig=FAST)
        [s] = ec2.describe_snapshots(SnapshotIds=[snap["SnapshotId"]])["Snapshots"]
        assert (s["VolumeId"], s["VolumeSize"], s["State"]) == (vid, 8, "completed")
    finally:
        ec2.delete_snapshot(SnapshotId=snap["SnapshotId"])
    m = ec2.modify_volume(VolumeId=vid, VolumeType="gp2")["VolumeModification"]
    assert m["TargetVolumeType"] == "gp2" and m["TargetIops"] == 100
    m = ec2.modify_volume(VolumeId=vid, VolumeType="gp3")["VolumeModification"]
    assert (m["TargetVolumeType"], m["TargetIops"], m["TargetThroughput"]) == ("gp3", 3000, 125)


@moto_gap("RunInstances launches MinCount instances, not MaxCount")
def test_run_instances_max_count(ec2, net, launch):
    # API reference, RunInstances MaxCount: "If you specify a value that is more capacity
    # than Amazon EC2 can launch in the target Availability Zone, Amazon EC2 launches the
    # largest possible number of instances above the specified minimum count."
    lr = launch(MinCount=1, MaxCount=3)
    r = lr.resp
    assert RES_ID.match(r["ReservationId"])
    assert len(r["Instances"]) == 3
    assert len(set(lr.ids)) == 3 and all(INST_ID.match(x) for x in lr.ids)
    assert sorted(i["AmiLaunchIndex"] for i in r["Instances"]) == [0, 1, 2]
    assert all(state(i["State"]) == PENDING for i in r["Instances"])
    assert len({i["PrivateIpAddress"] for i in r["Instances"]}) == 3
    # one reservation holds all three
    reservations = ec2.describe_instances(
        Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [lr.tag]}])["Reservations"]
    assert [x["ReservationId"] for x in reservations] == [r["ReservationId"]]
    assert sorted(i["InstanceId"] for i in reservations[0]["Instances"]) == sorted(lr.ids)
    assert tagged(ec2, lr.tag) == set(lr.ids)


def test_terminate_with_one_unknown_id_terminates_none(ec2, launch):
    # API reference, TerminateInstances: "If you specify multiple instances and the request
    # fails (for example, because of a single incorrect instance ID), none of the instances
    # are terminated."
    lr = launch()
    with pytest.raises(ClientError) as e:
        ec2.terminate_instances(InstanceIds=[lr.id, fake_id("i")])
    assert err(e) == ("InvalidInstanceID.NotFound", 400)
    assert state(instance(ec2, lr.id)["State"]) in (PENDING, RUNNING)


def test_run_in_subnet_with_groups(ec2, net, custom):
    [i] = custom.resp["Instances"]
    assert i["SubnetId"] == custom.subnet["SubnetId"]
    assert i["VpcId"] == net.vpc
    assert i["Placement"]["AvailabilityZone"] == custom.subnet["AvailabilityZone"]
    assert i["InstanceType"] == custom.itype
    assert [g["GroupId"] for g in i["SecurityGroups"]] == [custom.sg]
    d = instance(ec2, custom.id)
    assert d["SubnetId"] == custom.subnet["SubnetId"]
    assert d["Placement"]["AvailabilityZone"] == custom.subnet["AvailabilityZone"]
    assert d["SecurityGroups"] == [{"GroupId": custom.sg, "GroupName": custom.sg_name}]
    assert "KeyName" not in d  # launched without a key pair


def test_run_with_instance_and_volume_tags(ec2, module_tag, custom):
    d = instance(ec2, custom.id)
    assert tags_of(d) == {TAG_KEY: module_tag.value, module_tag.role_key: "custom"}
    # the volume tags went to the instance's volumes, and only there
    vols = ec2.describe_volumes(Filters=[{"Name": f"tag:{custom.vol_key}", "Values": ["root-vol"]}])["Volumes"]
    assert len(vols) == 1
    v = vols[0]
    assert tags_of(v) == {custom.vol_key: "root-vol"}
    assert [a["InstanceId"] for a in v["Attachments"]] == [custom.id]
    assert v["AvailabilityZone"] == d["Placement"]["AvailabilityZone"]


@pytest.fixture(scope="module")
def profiled(ec2, endpoint):
    """An instance launched with an IAM instance profile given by name (the profile is
    made first, and deleted after the instance is gone)."""
    iam = make_client(endpoint, "iam")
    name = uniq("prof")
    prof = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    launcher = Launcher(ec2)
    try:
        lr = launcher(IamInstanceProfile={"Name": name})
        yield types.SimpleNamespace(profile=prof, launch=lr, id=lr.id)
    finally:
        launcher.cleanup(wait_for_it=True)
        try:
            iam.delete_instance_profile(InstanceProfileName=name)
        except ClientError:
            pass


def test_run_with_iam_instance_profile(ec2, profiled):
    d = instance(ec2, profiled.id)
    assert d["IamInstanceProfile"]["Arn"] == profiled.profile["Arn"]


@moto_gap("IamInstanceProfile.Id is an association id (iip-assoc-...), not the instance profile's id; "
          "the iam-instance-profile.arn filter is not implemented (HTTP 500)")
def test_iam_instance_profile_id_and_filter(ec2, profiled):
    # API reference, IamInstanceProfile: Id is "The ID of the instance profile."
    d = instance(ec2, profiled.id)
    assert d["IamInstanceProfile"] == {"Arn": profiled.profile["Arn"], "Id": profiled.profile["InstanceProfileId"]}
    arn = profiled.profile["Arn"]
    assert tagged(ec2, profiled.launch.tag, ("iam-instance-profile.arn", [arn])) == {profiled.id}
    assert tagged(ec2, profiled.launch.tag, ("iam-instance-profile.arn", [arn + "x"])) == set()


def test_user_data_read_back(ec2, shared):
    r = ec2.describe_instance_attribute(InstanceId=shared.id, Attribute="userData")
    assert r["InstanceId"] == shared.id
    # the attribute value is the user data, base64-encoded
    assert base64.b64decode(r["UserData"]["Value"]).decode() == shared.user_data


def test_instance_type_attribute(ec2, shared):
    r = ec2.describe_instance_attribute(InstanceId=shared.id, Attribute="instanceType")
    assert r["InstanceId"] == shared.id
    assert r["InstanceType"] == {"Value": itypes(ec2)[0]}


# --- 2. errors ------------------------------------------------------------------------------

@moto_gap("RunInstances launches from an AMI id that does not exist")
def test_run_unknown_image(ec2):
    e = run_fails(ec2, ImageId="ami-0123456789abcdef0")
    assert code_status(e) == ("InvalidAMIID.NotFound", 400)


@moto_gap("RunInstances launches from a malformed AMI id")
def test_run_malformed_image(ec2):
    e = run_fails(ec2, ImageId="ami-xyz")
    assert code_status(e) == ("InvalidAMIID.Malformed", 400)


@moto_gap("RunInstances accepts an instance type that does not exist")
def test_run_unknown_instance_type(ec2):
    e = run_fails(ec2, InstanceType="t3.nonexistent")
    assert code_status(e) == ("InvalidParameterValue", 400)


@moto_gap("RunInstances accepts MinCount > MaxCount (and launches MinCount instances)")
def test_run_min_count_above_max_count(ec2):
    e = run_fails(ec2, MinCount=3, MaxCount=1)
    assert code_status(e) == ("InvalidParameterValue", 400)


@moto_gap("RunInstances accepts a key pair name that does not exist")
def test_run_unknown_key_pair(ec2):
    e = run_fails(ec2, KeyName=uniq("no-such-key"))
    assert code_status(e) == ("InvalidKeyPair.NotFound", 400)


def test_run_unknown_subnet(ec2):
    e = run_fails(ec2, SubnetId=fake_id("subnet"))
    assert code_status(e) == ("InvalidSubnetID.NotFound", 400)


def test_run_unknown_security_group(ec2):
    e = run_fails(ec2, SecurityGroupIds=[fake_id("sg")])
    assert code_status(e) == ("InvalidGroup.NotFound", 400)


INSTANCE_OPS = {
    "describe": lambda ec2, iid: ec2.describe_instances(InstanceIds=[iid]),
    "stop": lambda ec2, iid: ec2.stop_instances(InstanceIds=[iid]),
    "start": lambda ec2, iid: ec2.start_instances(InstanceIds=[iid]),
    "terminate": lambda ec2, iid: ec2.terminate_instances(InstanceIds=[iid]),
}


@pytest.mark.parametrize("op", sorted(INSTANCE_OPS))
def test_unknown_instance_id(ec2, op):
    with pytest.raises(ClientError) as e:
        INSTANCE_OPS[op](ec2, fake_id("i"))
    assert err(e) == ("InvalidInstanceID.NotFound", 400)


@moto_gap("a malformed instance id answers InvalidInstanceID.NotFound instead of InvalidInstanceID.Malformed")
@pytest.mark.parametrize("op", sorted(INSTANCE_OPS))
def test_malformed_instance_id(ec2, op):
    with pytest.raises(ClientError) as e:
        INSTANCE_OPS[op](ec2, "i-xyz")
    assert err(e) == ("InvalidInstanceID.Malformed", 400)


def test_describe_known_and_unknown_id(ec2, shared):
    # API reference, DescribeInstances: "If you specify an instance ID that is not valid,
    # an error is returned."
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=[shared.id, fake_id("i")])
    assert err(e) == ("InvalidInstanceID.NotFound", 400)


# --- 3. the state machine -------------------------------------------------------------------

def test_stop_and_start(ec2, launch):
    lr = launch()
    wait(ec2, "running", lr.id)

    [ch] = ec2.stop_instances(InstanceIds=[lr.id])["StoppingInstances"]
    assert ch["InstanceId"] == lr.id
    assert state(ch["PreviousState"]) == RUNNING
    assert state(ch["CurrentState"]) in (STOPPING, STOPPED)
    wait(ec2, "stopped", lr.id)
    assert state(instance(ec2, lr.id)["State"]) == STOPPED
    assert tagged(ec2, lr.tag, ("instance-state-name", ["stopped"])) == {lr.id}
    assert tagged(ec2, lr.tag, ("instance-state-name", ["running"])) == set()

    [ch] = ec2.start_instances(InstanceIds=[lr.id])["StartingInstances"]
    assert ch["InstanceId"] == lr.id
    assert state(ch["PreviousState"]) == STOPPED
    assert state(ch["CurrentState"]) == PENDING
    wait(ec2, "running", lr.id)
    i = instance(ec2, lr.id)
    assert state(i["State"]) == RUNNING
    assert i["PrivateIpAddress"] == lr.resp["Instances"][0]["PrivateIpAddress"]  # kept across stop/start


@moto_gap("StopInstances on a stopped instance reports CurrentState stopping instead of stopped")
def test_stop_stopped_instance(ec2, launch):
    lr = launch()
    wait(ec2, "running", lr.id)
    ec2.stop_instances(InstanceIds=[lr.id])
    wait(ec2, "stopped", lr.id)
    [ch] = ec2.stop_instances(InstanceIds=[lr.id])["StoppingInstances"]
    assert ch["InstanceId"] == lr.id
    assert state(ch["PreviousState"]) == STOPPED
    assert state(ch["CurrentState"]) == STOPPED
    assert state(instance(ec2, lr.id)["State"]) == STOPPED


def test_reboot_running_instance(ec2, launch):
    lr = launch()
    wait(ec2, "running", lr.id)
    r = ec2.reboot_instances(InstanceIds=[lr.id])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    # a reboot keeps the instance in the running state
    for _ in range(3):
        assert state(instance(ec2, lr.id)["State"]) == RUNNING
        time.sleep(0.5)
    wait(ec2, "running", lr.id)


def test_terminate_running_instance(ec2, launch):
    lr = launch()
    wait(ec2, "running", lr.id)
    i = instance(ec2, lr.id)
    [root] = [m for m in i["BlockDeviceMappings"] if m["Ebs"]["DeleteOnTermination"]]
    vid = root["Ebs"]["VolumeId"]

    [ch] = ec2.terminate_instances(InstanceIds=[lr.id])["TerminatingInstances"]
    assert ch["InstanceId"] == lr.id
    assert state(ch["PreviousState"]) == RUNNING
    assert state(ch["CurrentState"]) in (SHUTTING_DOWN, TERMINATED)
    wait(ec2, "terminated", lr.id)

    # terminated instances stay visible for a while
    assert state(instance(ec2, lr.id)["State"]) == TERMINATED
    assert tagged(ec2, lr.tag, ("instance-state-name", ["terminated"])) == {lr.id}
    assert tagged(ec2, lr.tag, ("instance-state-name", ["pending", "running", "stopped"])) == set()

    # the root volume had DeleteOnTermination=true
    assert volume_gone(ec2, vid), f"root volume {vid} survived its instance"


@moto_gap("StartInstances / StopInstances on a terminated instance succeed instead of IncorrectInstanceState")
def test_start_or_stop_terminated_instance(ec2, launch):
    lr = launch()
    ec2.terminate_instances(InstanceIds=[lr.id])
    wait(ec2, "terminated", lr.id)
    with pytest.raises(ClientError) as e:
        ec2.start_instances(InstanceIds=[lr.id])
    assert err(e) == ("IncorrectInstanceState", 400)
    with pytest.raises(ClientError) as e:
        ec2.stop_instances(InstanceIds=[lr.id])
    assert err(e) == ("IncorrectInstanceState", 400)
    assert state(instance(ec2, lr.id)["State"]) == TERMINATED
    # API reference, RebootInstances: "Requests to reboot terminated instances are ignored."
    ec2.reboot_instances(InstanceIds=[lr.id])
    assert state(instance(ec2, lr.id)["State"]) == TERMINATED


@moto_gap("TerminateInstances on a terminated instance reports CurrentState shutting-down")
def test_terminate_terminated_instance(ec2, launch):
    lr = launch()
    ec2.terminate_instances(InstanceIds=[lr.id])
    wait(ec2, "terminated", lr.id)
    [ch] = ec2.terminate_instances(InstanceIds=[lr.id])["TerminatingInstances"]
    assert ch["InstanceId"] == lr.id
    assert state(ch["PreviousState"]) == TERMINATED
    assert state(ch["CurrentState"]) == TERMINATED


def test_terminate_stopped_instance(ec2, launch):
    lr = launch()
    wait(ec2, "running", lr.id)
    ec2.stop_instances(InstanceIds=[lr.id])
    wait(ec2, "stopped", lr.id)
    [ch] = ec2.terminate_instances(InstanceIds=[lr.id])["TerminatingInstances"]
    assert ch["InstanceId"] == lr.id
    assert state(ch["PreviousState"]) == STOPPED
    assert state(ch["CurrentState"]) in (SHUTTING_DOWN, TERMINATED)
    wait(ec2, "terminated", lr.id)
    assert state(instance(ec2, lr.id)["State"]) == TERMINATED


# --- 4. ModifyInstanceAttribute / 5. DescribeInstanceStatus ------------------------------------

@moto_gap("ModifyInstanceAttribute changes InstanceType / UserData of a running instance, and rejects "
          "UserData sent as the API's blob (base64 on the wire) with InvalidUserData.Malformed")
def test_modify_user_data_needs_stopped_instance(ec2, launch):
    # ModifyInstanceAttribute: "To modify some attributes, the instance must be stopped";
    # the EC2 error-code list gives user data as the example under IncorrectInstanceState,
    # and the user guide requires a stopped instance to change the instance type.
    lr = launch(UserData="#!/bin/bash\necho one\n")
    wait(ec2, "running", lr.id)
    default, other = itypes(ec2)
    with pytest.raises(ClientError) as e:
        ec2.modify_instance_attribute(InstanceId=lr.id, InstanceType={"Value": other})
    assert err(e) == ("IncorrectInstanceState", 400)
    with pytest.raises(ClientError) as e:
        ec2.modify_instance_attribute(InstanceId=lr.id, UserData={"Value": b"#!/bin/bash\necho two\n"})
    assert err(e) == ("IncorrectInstanceState", 400)
    assert instance(ec2, lr.id)["InstanceType"] == default
    ud = ec2.describe_instance_attribute(InstanceId=lr.id, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(ud) == b"#!/bin/bash\necho one\n"

    ec2.stop_instances(InstanceIds=[lr.id])
    wait(ec2, "stopped", lr.id)
    # UserData is a blob: botocore base64-encodes the bytes on the wire
    ec2.modify_instance_attribute(InstanceId=lr.id, UserData={"Value": b"#!/bin/bash\necho two\n"})
    ud = ec2.describe_instance_attribute(InstanceId=lr.id, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(ud) == b"#!/bin/bash\necho two\n"
    assert state(instance(ec2, lr.id)["State"]) == STOPPED


def test_modify_instance_type_when_stopped(ec2, launch):
    lr = launch()
    wait(ec2, "running", lr.id)
    default, other = itypes(ec2)
    ec2.stop_instances(InstanceIds=[lr.id])
    wait(ec2, "stopped", lr.id)

    ec2.modify_instance_attribute(InstanceId=lr.id, InstanceType={"Value": other})
    r = ec2.describe_instance_attribute(InstanceId=lr.id, Attribute="instanceType")
    assert r["InstanceType"] == {"Value": other}
    assert instance(ec2, lr.id)["InstanceType"] == other
    assert tagged(ec2, lr.tag, ("instance-type", [other])) == {lr.id}
    assert tagged(ec2, lr.tag, ("instance-type", [default])) == set()
    assert state(instance(ec2, lr.id)["State"]) == STOPPED


def test_describe_instance_status_running(ec2, shared):
    [st] = ec2.describe_instance_status(InstanceIds=[shared.id])["InstanceStatuses"]
    assert st["InstanceId"] == shared.id
    assert state(st["InstanceState"]) == RUNNING
    assert st["AvailabilityZone"] == shared.resp["Instances"][0]["Placement"]["AvailabilityZone"]
    assert st["InstanceStatus"]["Status"] in ("ok", "initializing")
    assert st["SystemStatus"]["Status"] in ("ok", "initializing")


def test_describe_instance_status_stopped(ec2, launch):
    # API reference: "By default, only running instances are described, unless you
    # specifically indicate to return the status of all instances."
    lr = launch()
    wait(ec2, "running", lr.id)
    ec2.stop_instances(InstanceIds=[lr.id])
    wait(ec2, "stopped", lr.id)
    assert ec2.describe_instance_status(InstanceIds=[lr.id])["InstanceStatuses"] == []
    [st] = ec2.describe_instance_status(InstanceIds=[lr.id], IncludeAllInstances=True)["InstanceStatuses"]
    assert st["InstanceId"] == lr.id
    assert state(st["InstanceState"]) == STOPPED


# --- 6. DescribeInstances filters and pagination ------------------------------------------------

def test_describe_instances_filters(ec2, net, module_tag, shared, custom):
    a, b = shared.id, custom.id
    ia, ib = instance(ec2, a), instance(ec2, b)

    def ids(*filters):
        return tagged(ec2, module_tag.value, *filters)

    assert ids() == {a, b}
    assert ids(("instance-id", [a])) == {a}
    assert ids(("instance-id", [a, b])) == {a, b}
    assert ids(("instance-state-name", ["running"])) == {a, b}
    assert ids(("instance-state-name", ["stopped", "terminated"])) == set()
    assert ids((f"tag:{module_tag.role_key}", ["shared"])) == {a}
    assert ids((f"tag:{module_tag.role_key}", ["shared", "custom"])) == {a, b}
    assert ids((f"tag:{module_tag.role_key}", ["neither"])) == set()
    assert ids(("tag-key", [module_tag.role_key])) == {a, b}
    assert ids(("tag-key", ["Name"])) == {a}
    assert ids(("instance-type", [ia["InstanceType"]])) == {a}
    assert ids(("instance-type", [ib["InstanceType"]])) == {b}
    assert ids(("subnet-id", [ia["SubnetId"]])) == {a}
    assert ids(("subnet-id", [ia["SubnetId"], ib["SubnetId"]])) == {a, b}
    assert ids(("vpc-id", [net.vpc])) == {a, b}
    assert ids(("vpc-id", [fake_id("vpc")])) == set()
    assert ids(("private-ip-address", [ia["PrivateIpAddress"]])) == {a}
    assert ids(("image-id", [image_id(ec2)])) == {a, b}
    assert ids(("image-id", ["ami-0123456789abcdef0"])) == set()
    assert ids(("key-name", [shared.key_name])) == {a}
    assert ids(("instance.group-id", [custom.sg])) == {b}
    # filters are ANDed
    assert ids(("instance-id", [a]), ("instance-type", [ib["InstanceType"]])) == set()
    # a tag:KEY filter alone, without the helper's own
    res = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [shared.name]}])["Reservations"]
    assert [i["InstanceId"] for r in res for i in r["Instances"]] == [a]


@moto_gap("the availability-zone filter matches nothing, reservation-id is not implemented (HTTP 500)")
def test_describe_instances_filter_zone_and_reservation(ec2, module_tag, shared, custom):
    za = instance(ec2, shared.id)["Placement"]["AvailabilityZone"]
    zb = instance(ec2, custom.id)["Placement"]["AvailabilityZone"]
    assert tagged(ec2, module_tag.value, ("availability-zone", [za])) == {shared.id}
    assert tagged(ec2, module_tag.value, ("availability-zone", [zb])) == {custom.id}
    assert tagged(ec2, module_tag.value, ("availability-zone", [za, zb])) == {shared.id, custom.id}
    assert tagged(ec2, module_tag.value, ("reservation-id", [shared.resp["ReservationId"]])) == {shared.id}
    assert tagged(ec2, module_tag.value, ("reservation-id", [custom.resp["ReservationId"]])) == {custom.id}


@moto_gap("instance.group-id does not match the default group of an instance launched without groups")
def test_describe_instances_filter_default_group(ec2, net, module_tag, shared, custom):
    assert tagged(ec2, module_tag.value, ("instance.group-id", [net.sg])) == {shared.id}


@moto_gap("DescribeInstances ignores MaxResults and never returns a NextToken")
def test_describe_instances_pagination(ec2, launch):
    lr = launch(MinCount=6, MaxCount=6)
    assert len(set(lr.ids)) == 6
    assert sorted(i["AmiLaunchIndex"] for i in lr.resp["Instances"]) == list(range(6))
    assert len({i["PrivateIpAddress"] for i in lr.resp["Instances"]}) == 6
    reservations = ec2.describe_instances(
        Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [lr.tag]}])["Reservations"]
    assert [r["ReservationId"] for r in reservations] == [lr.resp["ReservationId"]]  # one launch, one reservation
    flt = [{"Name": f"tag:{TAG_KEY}", "Values": [lr.tag]}]
    seen, pages, token = [], 0, None
    while True:
        kw = {"Filters": flt, "MaxResults": 5}
        if token:
            kw["NextToken"] = token
        r = ec2.describe_instances(**kw)
        pages += 1
        page = [i["InstanceId"] for res in r["Reservations"] for i in res["Instances"]]
        assert len(page) <= 5
        seen += page
        token = r.get("NextToken")
        if not token:
            break
        assert pages < 10
    assert len(seen) == len(set(seen))  # no instance twice
    assert set(seen) == set(lr.ids)
    assert pages >= 2

    pager = ec2.get_paginator("describe_instances")
    ids = [i["InstanceId"]
           for page in pager.paginate(Filters=flt, PaginationConfig={"PageSize": 5})
           for res in page["Reservations"] for i in res["Instances"]]
    assert sorted(ids) == sorted(lr.ids)


def test_describe_instances_max_results_with_ids(ec2, shared):
    # API reference: "You cannot specify this parameter and the instance IDs parameter in
    # the same request."
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=[shared.id], MaxResults=5)
    assert err(e) == ("InvalidParameterCombination", 400)


# --- 7. tags on instances -------------------------------------------------------------------

def test_describe_tags_of_instance(ec2, module_tag, shared, custom):
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [shared.id]}])["Tags"]
    assert {(t["Key"], t["Value"]) for t in tags} == set(shared.tags.items())
    assert {(t["ResourceId"], t["ResourceType"]) for t in tags} == {(shared.id, "instance")}

    def find(*filters):
        fs = [{"Name": n, "Values": list(vs)} for n, vs in filters]
        return sorted((t["ResourceId"], t["Key"], t["Value"]) for t in ec2.describe_tags(Filters=fs)["Tags"])

    rk = module_tag.role_key
    assert find(("resource-type", ["instance"]), ("key", [rk])) == sorted(
        [(shared.id, rk, "shared"), (custom.id, rk, "custom")])
    assert find(("key", [rk]), ("value", ["custom"])) == [(custom.id, rk, "custom")]
    assert find(("resource-type", ["volume"]), ("key", [rk])) == []  # instance tags stay on the instance
    assert find(("resource-id", [custom.id]), ("key", [rk])) == [(custom.id, rk, "custom")]


def test_create_and_delete_tags_on_instance(ec2, module_tag, shared):
    key = uniq("tk")
    ec2.create_tags(Resources=[shared.id], Tags=[{"Key": key, "Value": "one"}])
    try:
        assert tags_of(instance(ec2, shared.id))[key] == "one"
        assert tagged(ec2, module_tag.value, (f"tag:{key}", ["one"])) == {shared.id}
        tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"]
        assert [(t["ResourceId"], t["ResourceType"], t["Value"]) for t in tags] == [(shared.id, "instance", "one")]
        ec2.create_tags(Resources=[shared.id], Tags=[{"Key": key, "Value": "two"}])  # overwrite
        assert tags_of(instance(ec2, shared.id))[key] == "two"
    finally:
        ec2.delete_tags(Resources=[shared.id], Tags=[{"Key": key}])
    assert key not in tags_of(instance(ec2, shared.id))
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"] == []
    assert tags_of(instance(ec2, shared.id)) == shared.tags


@moto_gap("CreateTags on an instance id that does not exist succeeds")
def test_create_tags_unknown_instance(ec2):
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[fake_id("i")], Tags=[{"Key": "k", "Value": "v"}])
    assert err(e) == ("InvalidInstanceID.NotFound", 400)


# --- 8. GetConsoleOutput -------------------------------------------------------------------

def test_get_console_output(ec2, shared):
    r = ec2.get_console_output(InstanceId=shared.id)
    assert r["InstanceId"] == shared.id
    assert isinstance(r["Timestamp"], datetime.datetime)
    assert isinstance(r.get("Output", ""), str)  # botocore has already base64-decoded it


@moto_gap("nothing runs in the instance: the console shows a canned boot log, not the user data's output")
def test_console_output_shows_user_data_run(ec2, endpoint, shared):
    # the user data script ran at boot and echoed the marker to the console
    r = poll(lambda: ec2.get_console_output(InstanceId=shared.id),
             lambda r: shared.marker in r.get("Output", ""), timeout=20)
    assert shared.marker in r.get("Output", ""), r.get("Output", "")[-2000:]
    assert r["InstanceId"] == shared.id
    # the aws CLI decodes the output too
    out = aws_cli(endpoint, "ec2", "get-console-output", "--instance-id", shared.id)
    assert shared.marker in out["Output"]


def test_get_console_output_unknown_instance(ec2):
    with pytest.raises(ClientError) as e:
        ec2.get_console_output(InstanceId=fake_id("i"))
    assert err(e) == ("InvalidInstanceID.NotFound", 400)


# --- 9. the aws CLI -------------------------------------------------------------------------

def test_cli_run_describe_terminate(ec2, aws, launch):
    tag = uniq("cli")
    out = aws("ec2", "run-instances", "--image-id", image_id(ec2), "--instance-type", itypes(ec2)[0],
              "--count", "1",
              "--tag-specifications", f"ResourceType=instance,Tags=[{{Key={TAG_KEY},Value={tag}}}]")
    [i] = out["Instances"]
    iid = i["InstanceId"]
    launch.track(iid)
    assert INST_ID.match(iid)
    assert RES_ID.match(out["ReservationId"])
    assert i["State"] == {"Code": 0, "Name": "pending"}

    # (`aws ec2 wait instance-running` polls every 15 s; poll faster by hand)
    res = poll(lambda: aws("ec2", "describe-instances", "--filters", f"Name=tag:{TAG_KEY},Values={tag}")["Reservations"],
               lambda rs: rs and rs[0]["Instances"][0]["State"]["Name"] == "running")
    assert [(r["ReservationId"], [x["InstanceId"] for x in r["Instances"]]) for r in res] == [
        (out["ReservationId"], [iid])]
    assert res[0]["Instances"][0]["State"] == {"Code": 16, "Name": "running"}

    attr = aws("ec2", "describe-instance-attribute", "--instance-id", iid, "--attribute", "instanceType")
    assert attr["InstanceType"] == {"Value": itypes(ec2)[0]}

    term = aws("ec2", "terminate-instances", "--instance-ids", iid)
    [ch] = term["TerminatingInstances"]
    assert ch["InstanceId"] == iid
    assert ch["PreviousState"] == {"Code": 16, "Name": "running"}
    assert ch["CurrentState"]["Name"] in ("shutting-down", "terminated")
    wait(ec2, "terminated", iid)

    p = aws("ec2", "describe-instances", "--instance-ids", fake_id("i"), check=False)
    assert p.returncode != 0 and "InvalidInstanceID.NotFound" in p.stderr


def test_cli_describe_instance_status(aws, shared):
    out = aws("ec2", "describe-instance-status", "--instance-ids", shared.id)
    [st] = out["InstanceStatuses"]
    assert st["InstanceId"] == shared.id
    assert st["InstanceState"]["Name"] == "running"
