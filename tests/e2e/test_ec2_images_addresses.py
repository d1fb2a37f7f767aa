"""EC2: machine images made from instances, and Elastic IP addresses.

1. images: DescribeImages (the base image, Owners, ImageIds, filters), CreateImage
   (response, pending -> available, tags, every documented name rule, errors for bad
   names and bad instance ids, NoReboot versus the documented reboot), launching from
   an own image, DeregisterImage (the image is gone for DescribeImages and RunInstances,
   instances launched from it keep running), tags on images, the aws CLI;
2. Elastic IPs: AllocateAddress, DescribeAddresses (PublicIps, AllocationIds, filters,
   errors), AssociateAddress (the address and the instance show each other; moving to
   another instance, AllowReassociation=false, a second address replacing the first),
   DisassociateAddress (by AssociationId and by PublicIp), ReleaseAddress, terminating
   an instance lets its address go, tags on addresses, the aws CLI;
3. what only instances that really run show (nimbus with the namespace driver):
   an image carries its source instance's file changes (a file written, a file of the
   base image deleted) into instances launched from it while the base image stays
   untouched, CreateImage reboots the instance unless NoReboot (user data does not run
   again), instances of a deregistered image keep their files, and the floating-IP
   pattern: http://EIP/ answers the instance the address is associated with, follows a
   re-association with the very next request, and answers nothing once disassociated.

Validated against moto as well (NIMBUS_E2E_ENDPOINT=http://127.0.0.1:PORT
NIMBUS_E2E_PEER=moto): the checks where moto departs from documented AWS behaviour
are marked `moto_gap` and stay strict for nimbus; the tests of group 3 skip there
(moto runs nothing), and also on a nimbus whose /_nimbus/health does not report
"instance_driver": "namespace".

Isolation and cleanup: every instance carries TAG_KEY=<unique value> and is terminated
by a finalizer, every image is named uniquely and deregistered afterwards, every
address is disassociated and released afterwards. Read-only users share three module
instances: `pair` (A and B, each serving its host name over HTTP on port 80) and
`stamped` (S, whose user data changes its file system; the module's image is made
from it). The instances are in a security group of their own that admits TCP 80 from
anywhere (`web_sg`): the default group admits only its own members, and neither the
test process nor an Elastic IP's traffic is one.
"""
import datetime
import ipaddress
import json
import os
import re
import socket
import time
import types
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError, WaiterError

from conftest import aws_cli, make_client
from s3_helpers import ON_MOTO, moto_gap

TAG_KEY = "nimbus-e2e-img-eip"          # every instance and image gets it, with a unique value
FAST = {"Delay": 1, "MaxAttempts": 60}  # waiter config: poll every second, up to a minute
BOOT_TIMEOUT = 20                       # seconds from running to cloud-init's "finished"
FINISHED = re.compile(r"Cloud-init v\. 24\.1\.3 finished at")
AMI_ID = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")
EIPALLOC_ID = re.compile(r"^eipalloc-[0-9a-f]{8}([0-9a-f]{9})?$")
EIPASSOC_ID = re.compile(r"^eipassoc-[0-9a-f]{8}([0-9a-f]{9})?$")
NIMBUS_EIP_POOL = ipaddress.ip_network("127.100.0.0/16")
# the host's own HTTP proxy settings must not apply to instance or loopback addresses
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WEB = "nohup python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &"


# --- helpers --------------------------------------------------------------------------------

def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(excinfo):
    e = getattr(excinfo, "value", excinfo)
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def fake_id(prefix):
    """A well-formed id (17 hex digits) that names nothing."""
    return f"{prefix}-0{uuid.uuid4().hex[:16]}"


def tagspec(rtype, **tags):
    return [{"ResourceType": rtype, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


_BASE = {}


def base_image(ec2):
    """The image to launch from: nimbus's base image ("nimbus/host-root"); on another
    emulator an Amazon Linux 2 x86_64 image if there is one, else any Amazon image."""
    key = ec2.meta.endpoint_url
    if key not in _BASE:
        imgs = ec2.describe_images(Owners=["amazon"])["Images"]
        assert imgs, "DescribeImages(Owners=[amazon]) lists no image to launch"
        pick = ([i for i in imgs if i.get("Name") == "nimbus/host-root"]
                or sorted((i for i in imgs if re.fullmatch(r"amzn2-ami-hvm-[\d.]+-x86_64-gp2", i.get("Name", ""))),
                          key=lambda i: i["Name"])
                or imgs)
        _BASE[key] = pick[0]
    return _BASE[key]


def instance(ec2, iid):
    [res] = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    [i] = res["Instances"]
    return i


def wait(ec2, name, *ids):
    try:
        ec2.get_waiter(f"instance_{name}").wait(InstanceIds=list(ids), WaiterConfig=FAST)
    except WaiterError as e:
        seen = [(i["InstanceId"], i["State"]["Name"], i.get("StateTransitionReason"), i.get("StateReason"))
                for r in ec2.describe_instances(InstanceIds=list(ids))["Reservations"] for i in r["Instances"]]
        raise AssertionError(f"instances did not become {name}: {seen}") from e


def wait_image(ec2, image_id):
    ec2.get_waiter("image_available").wait(ImageIds=[image_id], WaiterConfig=FAST)


def poll(fn, ok, timeout=BOOT_TIMEOUT, interval=0.2):
    """Calls fn() until ok(result) holds or the time is up; returns the last result."""
    deadline = time.time() + timeout
    while True:
        r = fn()
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(interval)


def console(ec2, iid):
    return ec2.get_console_output(InstanceId=iid).get("Output", "") or ""


def wait_console(ec2, iid, *needles, finished=1):
    """Until the console shows every needle and `finished` cloud-init "finished" lines."""
    out = poll(lambda: console(ec2, iid),
               lambda c: all(n in c for n in needles) and len(FINISHED.findall(c)) >= finished)
    assert all(n in out for n in needles) and len(FINISHED.findall(out)) >= finished, (
        f"{iid}: console lacks {needles} / {finished} finished line(s):\n{out[-3000:]}")
    return out


def http_get(url, timeout=3):
    """(status, body) of a GET from the test process; None when nothing answers."""
    try:
        with HTTP.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None


def tcp_answer(ip, port=80, timeout=3):
    """What a fresh TCP connection to ip:port gets for a plain GET: "refused", "reset"
    (closed without an answer), "timeout", or the bytes of the answer."""
    try:
        s = socket.create_connection((ip, port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    try:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data if data else "reset"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "timeout"
    finally:
        s.close()


def terminate_quietly(ec2, ids, wait_for_it=True):
    ids = [i for i in ids if i]
    for iid in ids:
        try:
            ec2.terminate_instances(InstanceIds=[iid])
        except ClientError:
            pass
    if ids and wait_for_it:
        try:
            wait(ec2, "terminated", *ids)
        except (WaiterError, ClientError):
            pass


def deregister_quietly(ec2, image_ids):
    for img in image_ids:
        try:
            ec2.deregister_image(ImageId=img)
        except ClientError:
            pass


def release_quietly(ec2, allocation_ids):
    for alloc in allocation_ids:
        try:
            [a] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
        except (ClientError, ValueError):
            continue
        if a.get("AssociationId"):
            try:
                ec2.disassociate_address(AssociationId=a["AssociationId"])
            except ClientError:
                pass
        try:
            ec2.release_address(AllocationId=alloc)
        except ClientError:
            pass


def own_images(ec2, *filters):
    """Images of Owners=["self"] narrowed by (name, values) filters -> {ImageId: image}."""
    fs = [{"Name": n, "Values": list(vs)} for n, vs in filters]
    return {i["ImageId"]: i for i in ec2.describe_images(Owners=["self"], Filters=fs)["Images"]}


def address(ec2, alloc):
    [a] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
    return a


def assoc_view(a):
    """(InstanceId, AssociationId) of an address, None for each when unassociated."""
    return a.get("InstanceId") or None, a.get("AssociationId") or None


def address_ids(ec2, *filters):
    fs = [{"Name": n, "Values": list(vs)} for n, vs in filters]
    return {a["AllocationId"] for a in ec2.describe_addresses(Filters=fs)["Addresses"]}


class Fleet:
    """launch(user_data, image_id=None, count=1) -> [namespace(id, ip, dns, tag, resp)],
    in security group `group` (when given); every instance carries TAG_KEY=<unique
    value> and is terminated by cleanup()."""

    def __init__(self, ec2, group=None):
        self.ec2, self.group, self.made = ec2, group, []

    def launch(self, user_data="", image_id=None, count=1, **kw):
        tag = uniq("t")
        base = base_image(self.ec2)
        itype = "t4g.micro" if base.get("Architecture") == "arm64" else "t3.micro"
        if self.group:
            kw.setdefault("SecurityGroupIds", [self.group])
        r = self.ec2.run_instances(
            ImageId=image_id or base["ImageId"], InstanceType=itype, MinCount=count, MaxCount=count,
            UserData=user_data, TagSpecifications=tagspec("instance", **{TAG_KEY: tag}), **kw)
        self.made += [i["InstanceId"] for i in r["Instances"]]
        return [types.SimpleNamespace(id=i["InstanceId"], ip=i["PrivateIpAddress"], dns=i.get("PrivateDnsName", ""),
                                      tag=tag, resp=r, launched=i)
                for i in sorted(r["Instances"], key=lambda i: i["AmiLaunchIndex"])]

    def cleanup(self, wait_for_it=True):
        terminate_quietly(self.ec2, self.made, wait_for_it)


def web_user_data(marker):
    """Serves the host name on port 80 (/srv/www/index.html), then says so."""
    return "\n".join([
        "#!/bin/bash",
        f'echo "web {marker} ran"',
        "mkdir -p /srv/www",
        "hostname > /srv/www/index.html",
        WEB,
        f'echo "web {marker} done"',
        "",
    ])


def check_user_data(marker, gone):
    """Reports /srv/www/index.html and whether `gone` exists, on the console."""
    return "\n".join([
        "#!/bin/bash",
        f'echo "check {marker} index=$(cat /srv/www/index.html 2>/dev/null || echo none)'
        f' gone=$(test -e {gone} && echo present || echo absent)"',
        "",
    ])


def check_result(out, marker):
    m = re.search(rf"check {re.escape(marker)} index=(\S+) gone=(\w+)", out)
    assert m, f"no check line for {marker} on the console:\n{out[-3000:]}"
    return m.group(1), m.group(2)


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ec2(endpoint):
    return make_client(endpoint, "ec2")


@pytest.fixture(scope="module")
def ec2_raw(endpoint):
    """A client that sends what it is given (no botocore parameter validation)."""
    return make_client(endpoint, "ec2", parameter_validation=False)


@pytest.fixture(scope="module")
def account(endpoint):
    return make_client(endpoint, "sts").get_caller_identity()["Account"]


@pytest.fixture(scope="module")
def runtime(endpoint):
    """True when instances really run: a nimbus whose health says the namespace driver."""
    if ON_MOTO:
        return False
    try:
        with HTTP.open(endpoint + "/_nimbus/health", timeout=5) as r:
            doc = json.loads(r.read())
    except (OSError, ValueError):
        return False
    return doc.get("instance_driver") == "namespace"


@pytest.fixture
def need_runtime(runtime):
    if not runtime:
        pytest.skip("instances do not really run here (needs nimbus with instance_driver namespace)")


@pytest.fixture(scope="module")
def web_sg(ec2):
    """A security group of the default VPC open for TCP 80 from anywhere: the default
    group admits only its own members, and the test process is none (nor is the
    Elastic IP's traffic). Deleted after the module's instances are gone."""
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    gid = ec2.create_security_group(GroupName=uniq("web"), Description="nimbus e2e: http from anywhere",
                                    VpcId=vpc["VpcId"])["GroupId"]
    try:
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        yield gid
    finally:
        try:
            ec2.delete_security_group(GroupId=gid)
        except ClientError:
            pass


@pytest.fixture(scope="module")
def pair(ec2, runtime, web_sg):
    """A and B: launched together from the base image, each serving its host name on
    port 80. Running (and, where instances really run, serving) before any test uses
    them; terminated at the end of the module."""
    fleet = Fleet(ec2, web_sg)
    marker = uniq("web")
    try:
        a, b = fleet.launch(web_user_data(marker), count=2)
        wait(ec2, "running", a.id, b.id)
        for box in (a, b):
            d = instance(ec2, box.id)
            box.eni = d["NetworkInterfaces"][0]["NetworkInterfaceId"]
            box.public_ip = d.get("PublicIpAddress")
            box.page = None
            if runtime:
                wait_console(ec2, box.id, f"web {marker} done")
                r = poll(lambda: http_get(f"http://{box.ip}/"), lambda r: r is not None and r[0] == 200, timeout=10)
                assert r is not None and r[0] == 200, f"{box.id} does not serve at {box.ip}: {r}"
                box.page = r[1]
        yield types.SimpleNamespace(a=a, b=b, marker=marker)
    finally:
        fleet.cleanup()


@pytest.fixture
def fleet(ec2, web_sg):
    f = Fleet(ec2, web_sg)
    yield f
    f.cleanup()


@pytest.fixture
def images(ec2):
    """images(InstanceId, Name=None, **kw) -> CreateImage's answer; every image made is
    deregistered when the test ends."""
    made = []

    def create(instance_id, name=None, **kw):
        kw.setdefault("TagSpecifications", tagspec("image", **{TAG_KEY: uniq("img")}))
        r = ec2.create_image(InstanceId=instance_id, Name=name or uniq("nimbus-e2e-img"), **kw)
        made.append(r["ImageId"])
        return r

    create.made = made
    yield create
    deregister_quietly(ec2, made)


@pytest.fixture
def addresses(ec2):
    """addresses(**kw) -> namespace(ip, alloc, resp) of a fresh Elastic IP; each one is
    disassociated and released when the test ends."""
    made = []

    def allocate(**kw):
        r = ec2.allocate_address(Domain="vpc", **kw)
        made.append(r["AllocationId"])
        return types.SimpleNamespace(ip=r["PublicIp"], alloc=r["AllocationId"], resp=r)

    yield allocate
    release_quietly(ec2, made)


def gone_file():
    """A file of the base image (the host's root on nimbus) for S to delete."""
    for p in ("/etc/motd", "/etc/issue.net", "/etc/issue", "/etc/debian_version", "/etc/os-release"):
        if os.path.isfile(p):
            return p
    pytest.skip("no file of the base image to delete")


@pytest.fixture(scope="module")
def stamped(ec2, runtime, web_sg):
    """S: user data writes /srv/www/index.html with a unique stamp, deletes a file of
    the base image and starts a web server. Running (and, where instances really run,
    its user data done) before the image is made; terminated at the end."""
    fleet = Fleet(ec2, web_sg)
    marker, stamp, gone = uniq("stamp"), uniq("stamp-page"), gone_file()
    user_data = "\n".join([
        "#!/bin/bash",
        f'echo "stamp {marker} ran"',
        "mkdir -p /srv/www",
        f"printf '%s\\n' '{stamp}' > /srv/www/index.html",
        f"rm -f {gone}",
        WEB,
        f'echo "stamp {marker} done"',
        "",
    ])
    try:
        [s] = fleet.launch(user_data)
        wait(ec2, "running", s.id)
        if runtime:
            wait_console(ec2, s.id, f"stamp {marker} done")
        yield types.SimpleNamespace(box=s, id=s.id, marker=marker, stamp=stamp, gone=gone)
    finally:
        fleet.cleanup()


@pytest.fixture(scope="module")
def made_image(ec2, stamped):
    """The module's image: CreateImage from S with a name, a description and tags, and
    without NoReboot (so S is rebooted for it). Available before any test uses it;
    deregistered at the end."""
    name, tag = uniq("nimbus-e2e-img"), uniq("img")
    desc = f"made from {stamped.id} by the e2e suite"
    before = datetime.datetime.now(datetime.timezone.utc)
    r = ec2.create_image(InstanceId=stamped.id, Name=name, Description=desc,
                         TagSpecifications=tagspec("image", **{TAG_KEY: tag, "Name": name}))
    image_id = r["ImageId"]
    try:
        [first] = ec2.describe_images(ImageIds=[image_id])["Images"]
        wait_image(ec2, image_id)
        yield types.SimpleNamespace(id=image_id, resp=r, name=name, desc=desc, tag=tag, first=first,
                                    before=before, tags={TAG_KEY: tag, "Name": name})
    finally:
        deregister_quietly(ec2, [image_id])


@pytest.fixture(scope="module")
def from_image(ec2, stamped, made_image, runtime, web_sg):
    """T: launched from the module's image; its user data only reports what it finds."""
    fleet = Fleet(ec2, web_sg)
    marker = uniq("check")
    try:
        [t] = fleet.launch(check_user_data(marker, stamped.gone), image_id=made_image.id)
        wait(ec2, "running", t.id)
        t.marker = marker
        yield t
    finally:
        fleet.cleanup()


# --- 1. images ------------------------------------------------------------------------------

def test_describe_base_image(ec2):
    base = base_image(ec2)
    [img] = ec2.describe_images(ImageIds=[base["ImageId"]])["Images"]
    assert AMI_ID.match(img["ImageId"])
    assert img["State"] == "available"
    assert img["Public"] is True
    assert img["ImageOwnerAlias"] == "amazon"
    assert img["ImageType"] == "machine"
    if not ON_MOTO:
        # nimbus's one base image: the host's root
        named = [i for i in ec2.describe_images()["Images"] if i.get("Name") == "nimbus/host-root"]
        assert [i["ImageId"] for i in named] == [img["ImageId"]]
    # it is Amazon's: listed for Owners=["amazon"], not for Owners=["self"]
    assert img["ImageId"] in {i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]}
    assert img["ImageId"] not in own_images(ec2)


def test_create_image_response(ec2, account, stamped, made_image):
    assert AMI_ID.match(made_image.id)
    # CreateImage answers at once; the image is pending until its snapshot is taken
    assert made_image.first["State"] in ("pending", "available")
    [img] = ec2.describe_images(ImageIds=[made_image.id])["Images"]
    assert img["ImageId"] == made_image.id
    assert img["State"] == "available"
    assert img["Name"] == made_image.name
    assert img["Description"] == made_image.desc
    assert img["OwnerId"] == account
    assert img["Public"] is False
    assert img["ImageType"] == "machine"
    assert img["Architecture"] == instance(ec2, stamped.id)["Architecture"]
    assert img["SourceInstanceId"] == stamped.id
    assert tags_of(img) == made_image.tags
    created = datetime.datetime.strptime(img["CreationDate"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((created - made_image.before).total_seconds()) < 300


@moto_gap("an image made by CreateImage has RootDeviceType standard")
def test_created_image_is_ebs_backed(ec2, made_image):
    # CreateImage: "Creates an Amazon EBS-backed AMI from an Amazon EBS-backed instance"
    [img] = ec2.describe_images(ImageIds=[made_image.id])["Images"]
    assert img["RootDeviceType"] == "ebs"
    assert img["RootDeviceName"] in {m["DeviceName"] for m in img["BlockDeviceMappings"]}


def test_describe_images_owners(ec2, account, made_image):
    base = base_image(ec2)["ImageId"]
    mine = ec2.describe_images(Owners=["self"])["Images"]
    assert made_image.id in {i["ImageId"] for i in mine}
    assert base not in {i["ImageId"] for i in mine}
    assert {i["OwnerId"] for i in mine} == {account}
    assert made_image.id in {i["ImageId"] for i in ec2.describe_images(Owners=[account])["Images"]}
    assert made_image.id not in {i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]}
    # without Owners: every image the caller may launch, the own ones included
    assert {i["ImageId"] for i in ec2.describe_images(ImageIds=[base, made_image.id])["Images"]} == {
        base, made_image.id}


def test_describe_images_filters(ec2, made_image):
    me = {made_image.id}
    assert set(own_images(ec2, ("name", [made_image.name]))) == me
    assert set(own_images(ec2, ("name", [made_image.name[:-4] + "*"]))) == me   # wildcards
    assert set(own_images(ec2, ("name", [made_image.name + "x"]))) == set()
    assert set(own_images(ec2, ("image-id", [made_image.id]))) == me
    assert made_image.id in own_images(ec2, ("state", ["available"]))
    assert made_image.id not in own_images(ec2, ("state", ["pending", "failed"]))
    assert set(own_images(ec2, (f"tag:{TAG_KEY}", [made_image.tag]))) == me
    assert set(own_images(ec2, (f"tag:{TAG_KEY}", [made_image.tag + "x"]))) == set()
    assert made_image.id in own_images(ec2, ("tag-key", [TAG_KEY]))
    # filters are ANDed, the values of one filter ORed
    assert set(own_images(ec2, ("name", [made_image.name]), ("state", ["pending"]))) == set()
    assert set(own_images(ec2, ("name", [made_image.name]), ("state", ["pending", "available"]))) == me
    # a filter alone, without Owners
    r = ec2.describe_images(Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [made_image.tag]}])["Images"]
    assert [i["ImageId"] for i in r] == [made_image.id]


def test_describe_images_unknown_id(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[fake_id("ami")])
    assert err(e) == ("InvalidAMIID.NotFound", 400)


@moto_gap("DescribeImages with a known and an unknown image id lists the known one")
def test_describe_images_known_and_unknown_id(ec2, made_image):
    # an unknown id among known ones fails the whole call (as for every EC2 Describe by ids)
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[made_image.id, fake_id("ami")])
    assert err(e) == ("InvalidAMIID.NotFound", 400)


@moto_gap("a malformed AMI id answers InvalidAMIID.NotFound instead of InvalidAMIID.Malformed")
def test_describe_images_malformed_id(ec2):
    # EC2 error codes: InvalidAMIID.Malformed, "The specified AMI ID is malformed. Ensure
    # that you provide the full AMI ID, in the form ami-xxxxxxxxxxxxxxxxx."
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=["ami-xyz"])
    assert err(e) == ("InvalidAMIID.Malformed", 400)


def test_image_tags(ec2, made_image):
    key = uniq("tk")
    ec2.create_tags(Resources=[made_image.id], Tags=[{"Key": key, "Value": "one"}])
    try:
        [img] = ec2.describe_images(ImageIds=[made_image.id])["Images"]
        assert tags_of(img) == dict(made_image.tags, **{key: "one"})
        tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"]
        assert [(t["ResourceId"], t["ResourceType"], t["Value"]) for t in tags] == [(made_image.id, "image", "one")]
        assert set(own_images(ec2, (f"tag:{key}", ["one"]))) == {made_image.id}
    finally:
        ec2.delete_tags(Resources=[made_image.id], Tags=[{"Key": key}])
    [img] = ec2.describe_images(ImageIds=[made_image.id])["Images"]
    assert tags_of(img) == made_image.tags
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"] == []


@moto_gap("CreateImage accepts a name that another image of the account already has")
def test_create_image_duplicate_name(ec2, pair, made_image, images):
    # EC2 error codes: InvalidAMIName.Duplicate, "The specified AMI name is already in use
    # by another AMI."
    with pytest.raises(ClientError) as e:
        images(pair.a.id, name=made_image.name, NoReboot=True)
    assert err(e) == ("InvalidAMIName.Duplicate", 400)
    assert set(own_images(ec2, ("name", [made_image.name]))) == {made_image.id}


@moto_gap("CreateImage accepts any name (too short, too long, characters outside the allowed set)")
@pytest.mark.parametrize("name", ["ab", "bad*name-{}", "x" * 129, "no\\backslash-{}", "bad,comma-{}"],
                         ids=["2-chars", "asterisk", "129-chars", "backslash", "comma"])
def test_create_image_malformed_name(ec2_raw, ec2, pair, images, name):
    # CreateImage, Name: "Constraints: 3-128 alphanumeric characters, parentheses (()),
    # square brackets ([]), spaces ( ), periods (.), slashes (/), dashes (-), single quotes
    # ('), at-signs (@), or underscores(_)"
    name = name.format(uuid.uuid4().hex[:8])
    with pytest.raises(ClientError) as e:
        r = ec2_raw.create_image(InstanceId=pair.a.id, Name=name, NoReboot=True)
        images.made.append(r["ImageId"])
    assert err(e) == ("InvalidAMIName.Malformed", 400)
    assert name not in {i["Name"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def test_create_image_name_with_every_allowed_character(ec2, pair, images):
    name = f"Ok (e2e) [all] 1.0/x-y'z@w_{uuid.uuid4().hex[:8]}"
    r = images(pair.a.id, name=name, NoReboot=True)
    wait_image(ec2, r["ImageId"])
    [img] = ec2.describe_images(ImageIds=[r["ImageId"]])["Images"]
    assert img["Name"] == name
    assert img["State"] == "available"


def test_create_image_unknown_instance(ec2, images):
    name = uniq("nimbus-e2e-img")
    with pytest.raises(ClientError) as e:
        images(fake_id("i"), name=name)
    assert err(e) == ("InvalidInstanceID.NotFound", 400)
    assert own_images(ec2, ("name", [name])) == {}


@moto_gap("a malformed instance id answers InvalidInstanceID.NotFound instead of InvalidInstanceID.Malformed")
def test_create_image_malformed_instance_id(ec2, images):
    name = uniq("nimbus-e2e-img")
    with pytest.raises(ClientError) as e:
        images("i-xyz", name=name)
    assert err(e) == ("InvalidInstanceID.Malformed", 400)
    assert own_images(ec2, ("name", [name])) == {}


def test_create_image_tag_specification_of_another_type(ec2, pair, images):
    # CreateImage, TagSpecifications: the ResourceType must be image or snapshot; "If you
    # specify other values for ResourceType, the request fails."
    name = uniq("nimbus-e2e-img")
    with pytest.raises(ClientError) as e:
        images(pair.a.id, name=name, NoReboot=True, TagSpecifications=tagspec("volume", k="v"))
    assert err(e) == ("InvalidParameterValue", 400)
    assert own_images(ec2, ("name", [name])) == {}


def test_create_image_no_reboot(ec2, runtime, pair, images):
    # CreateImage, NoReboot: "true - The instance is not rebooted before creating the image."
    r = images(pair.a.id, NoReboot=True)
    wait_image(ec2, r["ImageId"])
    assert instance(ec2, pair.a.id)["State"]["Name"] == "running"
    if runtime:
        time.sleep(0.5)
        out = console(ec2, pair.a.id)
        assert len(FINISHED.findall(out)) == 1, f"A booted again:\n{out[-3000:]}"
        assert http_get(f"http://{pair.a.ip}/") == (200, pair.a.page)  # the same boot still serves


def test_create_image_reboots_instance(ec2, need_runtime, stamped, made_image):
    # CreateImage, NoReboot: "false - The instance is rebooted before creating the image"
    # (the default). The instance comes back running, and its user data does not run again.
    out = wait_console(ec2, stamped.id, finished=2)
    assert len(FINISHED.findall(out)) == 2, out[-3000:]
    assert out.count(f"stamp {stamped.marker} ran") == 1, out[-3000:]
    wait(ec2, "running", stamped.id)
    assert instance(ec2, stamped.id)["State"]["Name"] == "running"


def test_launch_from_own_image(ec2, made_image, from_image):
    [launched] = from_image.resp["Instances"]
    assert launched["ImageId"] == made_image.id
    i = instance(ec2, from_image.id)
    assert i["ImageId"] == made_image.id
    assert i["State"]["Name"] == "running"
    r = ec2.describe_instances(Filters=[{"Name": "image-id", "Values": [made_image.id]},
                                        {"Name": f"tag:{TAG_KEY}", "Values": [from_image.tag]}])
    assert [x["InstanceId"] for res in r["Reservations"] for x in res["Instances"]] == [from_image.id]


def test_image_carries_instance_changes(ec2, need_runtime, fleet, stamped, made_image, from_image):
    # T (from the image): S's page is there and the file S deleted is gone; S's user data
    # is not T's, so it did not run in T
    out = wait_console(ec2, from_image.id, f"check {from_image.marker}")
    assert check_result(out, from_image.marker) == (stamped.stamp, "absent"), out[-3000:]
    assert f"stamp {stamped.marker}" not in out
    # U (from the base image): neither change
    marker = uniq("check")
    [u] = fleet.launch(check_user_data(marker, stamped.gone))
    out = wait_console(ec2, u.id, f"check {marker}")
    assert check_result(out, marker) == ("none", "present"), out[-3000:]


def test_deregister_image(ec2, pair, images):
    name = uniq("nimbus-e2e-img")
    image_id = images(pair.a.id, name=name, NoReboot=True)["ImageId"]
    wait_image(ec2, image_id)
    assert set(own_images(ec2, ("name", [name]))) == {image_id}
    ec2.deregister_image(ImageId=image_id)
    assert image_id not in own_images(ec2)
    assert own_images(ec2, ("image-id", [image_id])) == {}
    assert own_images(ec2, ("name", [name])) == {}


@moto_gap("DescribeImages(ImageIds=[a deregistered image]) answers an empty list instead of InvalidAMIID.NotFound; "
          "RunInstances still launches from a deregistered image")
def test_deregistered_image_not_found(ec2, pair, images):
    # DescribeImages: "After all instances that reference a deregistered AMI are terminated,
    # specifying the ID of the image will eventually return an error indicating that the
    # AMI ID cannot be found." No instance ever referenced this one.
    r = images(pair.a.id, NoReboot=True)
    image_id = r["ImageId"]
    wait_image(ec2, image_id)
    ec2.deregister_image(ImageId=image_id)
    with pytest.raises(ClientError) as e:
        ec2.describe_images(ImageIds=[image_id])
    assert err(e) == ("InvalidAMIID.NotFound", 400)
    tag = uniq("dereg")
    with pytest.raises(ClientError) as e:
        made = ec2.run_instances(ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                 TagSpecifications=tagspec("instance", **{TAG_KEY: tag}))
        terminate_quietly(ec2, [i["InstanceId"] for i in made["Instances"]], wait_for_it=False)
    assert err(e) == ("InvalidAMIID.NotFound", 400)
    r = ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [tag]}])["Reservations"]
    assert r == []


def test_deregister_unknown_image(ec2):
    with pytest.raises(ClientError) as e:
        ec2.deregister_image(ImageId=fake_id("ami"))
    assert err(e) == ("InvalidAMIID.NotFound", 400)


def test_instances_outlive_deregistered_image(ec2, runtime, pair, images, fleet):
    # DeregisterImage: "Deregistering an AMI does not delete ... Instances already launched
    # from the AMI."
    r = images(pair.a.id, NoReboot=True)
    image_id = r["ImageId"]
    wait_image(ec2, image_id)
    marker = uniq("d")
    # D serves whatever /srv/www holds: A's page, brought by the image
    [d] = fleet.launch(f"#!/bin/bash\n{WEB}\necho 'd {marker} done'\n", image_id=image_id)
    wait(ec2, "running", d.id)
    ec2.deregister_image(ImageId=image_id)
    # DescribeImages: "Recently deregistered images appear in the returned results for a
    # short interval and then return empty results" (an instance still references it)
    try:
        listed = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as e:
        assert err(e) == ("InvalidAMIID.NotFound", 400)
        listed = []
    assert all(i["State"] != "available" for i in listed), listed
    time.sleep(1)
    i = instance(ec2, d.id)
    assert i["State"]["Name"] == "running"
    assert i["ImageId"] == image_id
    if runtime:
        wait_console(ec2, d.id, f"d {marker} done")
        got = poll(lambda: http_get(f"http://{d.ip}/"), lambda g: g is not None, timeout=10)
        assert got == (200, pair.a.page)


def test_cli_images(ec2, endpoint, made_image):
    out = aws_cli(endpoint, "ec2", "describe-images", "--owners", "self",
                  "--filters", f"Name=name,Values={made_image.name}")
    assert [(i["ImageId"], i["Name"], i["State"]) for i in out["Images"]] == [
        (made_image.id, made_image.name, "available")]
    out = aws_cli(endpoint, "ec2", "describe-images", "--image-ids", made_image.id,
                  "--query", "Images[0].Tags")
    assert {t["Key"]: t["Value"] for t in out} == made_image.tags
    p = aws_cli(endpoint, "ec2", "describe-images", "--image-ids", fake_id("ami"), check=False)
    assert p.returncode != 0 and "InvalidAMIID.NotFound" in p.stderr


# --- 2. Elastic IPs -------------------------------------------------------------------------

def test_allocate_address(ec2, addresses):
    e1, e2 = addresses(), addresses()
    for e in (e1, e2):
        assert EIPALLOC_ID.match(e.alloc)
        assert ipaddress.ip_address(e.ip).version == 4
        assert e.resp["Domain"] == "vpc"
        a = address(ec2, e.alloc)
        assert (a["PublicIp"], a["AllocationId"], a["Domain"]) == (e.ip, e.alloc, "vpc")
        assert assoc_view(a) == (None, None)
    assert e1.ip != e2.ip and e1.alloc != e2.alloc


@pytest.mark.skipif(ON_MOTO, reason="nimbus's own address pool")
def test_nimbus_addresses_are_loopback(addresses):
    # nimbus draws Elastic IPs from 127.100.0.0/16 by default: reachable from this machine only
    e = addresses()
    assert ipaddress.ip_address(e.ip) in NIMBUS_EIP_POOL


@moto_gap("an unassociated address carries InstanceId and NetworkInterfaceId as empty strings")
def test_unassociated_address_has_no_association_fields(ec2, addresses):
    # Address: InstanceId "The ID of the instance that the address is associated with (if any)."
    a = address(ec2, addresses().alloc)
    for field in ("InstanceId", "AssociationId", "NetworkInterfaceId", "NetworkInterfaceOwnerId",
                  "PrivateIpAddress"):
        assert field not in a, (field, a)


def test_describe_addresses_selectors(ec2, addresses):
    key = uniq("ek")
    e1 = addresses(TagSpecifications=tagspec("elastic-ip", **{key: "one"}))
    e2 = addresses(TagSpecifications=tagspec("elastic-ip", **{key: "two"}))
    both = {e1.alloc, e2.alloc}

    def ids(**kw):
        return {a["AllocationId"] for a in ec2.describe_addresses(**kw)["Addresses"]}

    assert ids(PublicIps=[e1.ip]) == {e1.alloc}
    assert ids(PublicIps=[e1.ip, e2.ip]) == both
    assert ids(AllocationIds=[e2.alloc]) == {e2.alloc}
    assert ids(AllocationIds=[e1.alloc, e2.alloc]) == both
    assert both <= ids()  # all of the account's addresses
    assert address_ids(ec2, ("allocation-id", [e1.alloc])) == {e1.alloc}
    assert address_ids(ec2, ("public-ip", [e2.ip])) == {e2.alloc}
    assert address_ids(ec2, ("public-ip", [e1.ip, e2.ip])) == both
    assert address_ids(ec2, (f"tag:{key}", ["one"])) == {e1.alloc}
    assert address_ids(ec2, (f"tag:{key}", ["one", "two"])) == both
    assert address_ids(ec2, (f"tag:{key}", ["three"])) == set()
    assert address_ids(ec2, ("tag-key", [key])) == both
    assert both <= address_ids(ec2, ("domain", ["vpc"]))
    assert address_ids(ec2, ("domain", ["vpc"]), (f"tag:{key}", ["two"])) == {e2.alloc}
    # filters are ANDed
    assert address_ids(ec2, ("public-ip", [e1.ip]), (f"tag:{key}", ["two"])) == set()
    assert tags_of(address(ec2, e1.alloc)) == {key: "one"}


def test_describe_addresses_unknown(ec2, addresses):
    e = addresses()
    with pytest.raises(ClientError) as x:
        ec2.describe_addresses(PublicIps=["198.51.100.77"])
    assert err(x) == ("InvalidAddress.NotFound", 400)
    with pytest.raises(ClientError) as x:
        ec2.describe_addresses(AllocationIds=[fake_id("eipalloc")])
    assert err(x) == ("InvalidAllocationID.NotFound", 400)
    with pytest.raises(ClientError) as x:
        ec2.describe_addresses(AllocationIds=[e.alloc, fake_id("eipalloc")])
    assert err(x) == ("InvalidAllocationID.NotFound", 400)


def test_address_tags(ec2, addresses):
    e = addresses()
    key = uniq("ek")
    ec2.create_tags(Resources=[e.alloc], Tags=[{"Key": key, "Value": "v1"}])
    assert tags_of(address(ec2, e.alloc)) == {key: "v1"}
    assert address_ids(ec2, (f"tag:{key}", ["v1"])) == {e.alloc}
    ec2.delete_tags(Resources=[e.alloc], Tags=[{"Key": key}])
    assert tags_of(address(ec2, e.alloc)) == {}
    assert address_ids(ec2, (f"tag:{key}", ["v1"])) == set()


@moto_gap("DescribeTags calls an Elastic IP's resource type vpc-elastic-ip")
def test_describe_tags_of_address(ec2, addresses):
    # DescribeTags, resource-type: "customer-gateway | dedicated-host | dhcp-options |
    # elastic-ip | ..."
    key = uniq("ek")
    e = addresses(TagSpecifications=tagspec("elastic-ip", **{key: "v"}))
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [e.alloc]}])["Tags"]
    assert [(t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in tags] == [
        (e.alloc, "elastic-ip", key, "v")]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["elastic-ip"]},
                                      {"Name": "key", "Values": [key]}])["Tags"]
    assert [t["ResourceId"] for t in tags] == [e.alloc]


def test_associate_address(ec2, pair, addresses):
    a, b = pair.a, pair.b
    e = addresses()
    r = ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)
    assoc = r["AssociationId"]
    assert EIPASSOC_ID.match(assoc)
    got = address(ec2, e.alloc)
    assert got["PublicIp"] == e.ip
    assert got["InstanceId"] == a.id
    assert got["AssociationId"] == assoc
    assert got["PrivateIpAddress"] == a.ip
    assert got["NetworkInterfaceId"] == a.eni
    # the instance shows its public address
    assert instance(ec2, a.id)["PublicIpAddress"] == e.ip
    # filters on the association
    assert address_ids(ec2, ("instance-id", [a.id])) == {e.alloc}
    assert address_ids(ec2, ("association-id", [assoc])) == {e.alloc}
    assert address_ids(ec2, ("private-ip-address", [a.ip])) == {e.alloc}
    assert address_ids(ec2, ("network-interface-id", [a.eni])) == {e.alloc}
    assert address_ids(ec2, ("instance-id", [b.id]), ("allocation-id", [e.alloc])) == set()
    assert address_ids(ec2, ("private-ip-address", [b.ip]), ("allocation-id", [e.alloc])) == set()

    ec2.disassociate_address(AssociationId=assoc)
    assert assoc_view(address(ec2, e.alloc)) == (None, None)
    assert address_ids(ec2, ("association-id", [assoc])) == set()
    assert address_ids(ec2, ("instance-id", [a.id])) == set()
    after = instance(ec2, a.id).get("PublicIpAddress")
    assert after != e.ip
    if a.public_ip is None:  # launched without a public address: none again
        assert after is None


def test_instance_interface_shows_address(ec2, pair, addresses):
    # Instance.NetworkInterfaces[].Association: "The association information for an Elastic
    # IPv4 associated with the network interface."
    e = addresses()
    ec2.associate_address(AllocationId=e.alloc, InstanceId=pair.a.id)
    [ni] = instance(ec2, pair.a.id)["NetworkInterfaces"]
    assert ni["Association"]["PublicIp"] == e.ip


@moto_gap("AllowReassociation defaults to false: moving an associated address fails with Resource.AlreadyAssociated")
def test_reassociate_moves_address(ec2, pair, addresses):
    # AssociateAddress: "If the Elastic IP address is already associated with a different
    # instance, it is disassociated from that instance and associated with the specified
    # instance." AllowReassociation: "Reassociation is automatic".
    a, b = pair.a, pair.b
    e = addresses()
    first = ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)["AssociationId"]
    second = ec2.associate_address(AllocationId=e.alloc, InstanceId=b.id)["AssociationId"]
    assert EIPASSOC_ID.match(second) and second != first
    got = address(ec2, e.alloc)
    assert (got["InstanceId"], got["AssociationId"], got["PrivateIpAddress"], got["NetworkInterfaceId"]) == (
        b.id, second, b.ip, b.eni)
    assert instance(ec2, b.id)["PublicIpAddress"] == e.ip
    assert instance(ec2, a.id).get("PublicIpAddress") != e.ip
    assert address_ids(ec2, ("association-id", [first])) == set()
    assert address_ids(ec2, ("instance-id", [a.id]), ("allocation-id", [e.alloc])) == set()
    # and back
    third = ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id, AllowReassociation=True)["AssociationId"]
    assert assoc_view(address(ec2, e.alloc)) == (a.id, third)
    assert instance(ec2, a.id)["PublicIpAddress"] == e.ip
    assert instance(ec2, b.id).get("PublicIpAddress") != e.ip


def test_allow_reassociation_false(ec2, pair, addresses):
    # AssociateAddress, AllowReassociation: "you can specify false to ensure the operation
    # fails if the Elastic IP address is already associated with another resource."
    a, b = pair.a, pair.b
    e = addresses()
    first = ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)["AssociationId"]
    with pytest.raises(ClientError) as x:
        ec2.associate_address(AllocationId=e.alloc, InstanceId=b.id, AllowReassociation=False)
    assert err(x) == ("Resource.AlreadyAssociated", 400)
    assert assoc_view(address(ec2, e.alloc)) == (a.id, first)
    assert instance(ec2, a.id)["PublicIpAddress"] == e.ip
    assert instance(ec2, b.id).get("PublicIpAddress") != e.ip


def test_associate_again_with_same_instance(ec2, pair, addresses):
    # AssociateAddress: "This is an idempotent operation. If you perform the operation more
    # than once, Amazon EC2 doesn't return an error"
    a = pair.a
    e = addresses()
    ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)
    again = ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)["AssociationId"]
    assert EIPASSOC_ID.match(again)
    assert assoc_view(address(ec2, e.alloc)) == (a.id, again)
    assert instance(ec2, a.id)["PublicIpAddress"] == e.ip
    assert address_ids(ec2, ("instance-id", [a.id])) == {e.alloc}


@moto_gap("associating a second address leaves the instance's first address associated too")
def test_second_address_replaces_first(ec2, runtime, pair, addresses):
    # AssociateAddress: "If you associate an Elastic IP address with an instance that has an
    # existing Elastic IP address, the existing address is disassociated from the instance,
    # but remains allocated to your account."
    a = pair.a
    e1, e2 = addresses(), addresses()
    ec2.associate_address(AllocationId=e1.alloc, InstanceId=a.id)
    assoc2 = ec2.associate_address(AllocationId=e2.alloc, InstanceId=a.id)["AssociationId"]
    assert assoc_view(address(ec2, e1.alloc)) == (None, None)   # still allocated
    assert assoc_view(address(ec2, e2.alloc)) == (a.id, assoc2)
    assert instance(ec2, a.id)["PublicIpAddress"] == e2.ip
    assert address_ids(ec2, ("instance-id", [a.id])) == {e2.alloc}
    if runtime:
        assert http_get(f"http://{e2.ip}/") == (200, a.page)
        assert tcp_answer(e1.ip) in ("refused", "reset")


def test_disassociate_by_public_ip(ec2, pair, addresses):
    a = pair.a
    e = addresses()
    ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)
    ec2.disassociate_address(PublicIp=e.ip)
    assert assoc_view(address(ec2, e.alloc)) == (None, None)
    assert instance(ec2, a.id).get("PublicIpAddress") != e.ip


def test_disassociate_unknown_association(ec2):
    with pytest.raises(ClientError) as x:
        ec2.disassociate_address(AssociationId=fake_id("eipassoc"))
    assert err(x) == ("InvalidAssociationID.NotFound", 400)


def test_associate_errors(ec2, pair, addresses):
    e = addresses()
    with pytest.raises(ClientError) as x:
        ec2.associate_address(AllocationId=fake_id("eipalloc"), InstanceId=pair.a.id)
    assert err(x) == ("InvalidAllocationID.NotFound", 400)
    with pytest.raises(ClientError) as x:
        ec2.associate_address(AllocationId=e.alloc, InstanceId=fake_id("i"))
    assert err(x) == ("InvalidInstanceID.NotFound", 400)
    assert assoc_view(address(ec2, e.alloc)) == (None, None)


def test_release_associated_address(ec2, pair, addresses):
    # ReleaseAddress: "[Default VPC] Releasing an Elastic IP address automatically
    # disassociates it from any instance that it's associated with." (Only a nondefault
    # VPC answers InvalidIPAddress.InUse; every instance here is in the default VPC.)
    a = pair.a
    e = addresses()
    ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)
    ec2.release_address(AllocationId=e.alloc)
    with pytest.raises(ClientError) as x:
        ec2.describe_addresses(AllocationIds=[e.alloc])
    assert err(x) == ("InvalidAllocationID.NotFound", 400)
    assert "PublicIpAddress" not in instance(ec2, a.id)


def test_release_address(ec2, pair, addresses):
    e = addresses()
    assoc = ec2.associate_address(AllocationId=e.alloc, InstanceId=pair.a.id)["AssociationId"]
    ec2.disassociate_address(AssociationId=assoc)
    ec2.release_address(AllocationId=e.alloc)
    with pytest.raises(ClientError) as x:
        ec2.describe_addresses(AllocationIds=[e.alloc])
    assert err(x) == ("InvalidAllocationID.NotFound", 400)
    with pytest.raises(ClientError) as x:
        ec2.describe_addresses(PublicIps=[e.ip])
    assert err(x) == ("InvalidAddress.NotFound", 400)
    assert address_ids(ec2, ("allocation-id", [e.alloc])) == set()
    with pytest.raises(ClientError) as x:
        ec2.associate_address(AllocationId=e.alloc, InstanceId=pair.a.id)
    assert err(x) == ("InvalidAllocationID.NotFound", 400)


def test_release_unknown_allocation(ec2):
    with pytest.raises(ClientError) as x:
        ec2.release_address(AllocationId=fake_id("eipalloc"))
    assert err(x) == ("InvalidAllocationID.NotFound", 400)


@moto_gap("a terminated instance keeps its Elastic IP associated")
def test_terminate_lets_address_go(ec2, pair, fleet, addresses):
    # Elastic IP addresses (User Guide): when an instance is terminated its Elastic IP
    # address is disassociated and stays allocated to the account.
    e = addresses()
    [c] = fleet.launch()
    wait(ec2, "running", c.id)
    assoc = ec2.associate_address(AllocationId=e.alloc, InstanceId=c.id)["AssociationId"]
    assert assoc_view(address(ec2, e.alloc)) == (c.id, assoc)
    ec2.terminate_instances(InstanceIds=[c.id])
    wait(ec2, "terminated", c.id)
    got = poll(lambda: address(ec2, e.alloc), lambda g: assoc_view(g) == (None, None), timeout=10)
    assert assoc_view(got) == (None, None)
    assert got["PublicIp"] == e.ip   # still allocated
    assert address_ids(ec2, ("association-id", [assoc])) == set()
    assert instance(ec2, c.id).get("PublicIpAddress") != e.ip
    # and free to go elsewhere
    again = ec2.associate_address(AllocationId=e.alloc, InstanceId=pair.a.id, AllowReassociation=False)
    assert assoc_view(address(ec2, e.alloc)) == (pair.a.id, again["AssociationId"])


def test_cli_addresses(ec2, endpoint, pair):
    aws = lambda *args, **kw: aws_cli(endpoint, *args, **kw)  # noqa: E731
    key = uniq("ek")
    out = aws("ec2", "allocate-address", "--domain", "vpc",
              "--tag-specifications", f"ResourceType=elastic-ip,Tags=[{{Key={key},Value=cli}}]")
    alloc, ip = out["AllocationId"], out["PublicIp"]
    try:
        assert EIPALLOC_ID.match(alloc) and out["Domain"] == "vpc"
        got = aws("ec2", "describe-addresses", "--filters", f"Name=tag:{key},Values=cli")["Addresses"]
        assert [(x["AllocationId"], x["PublicIp"]) for x in got] == [(alloc, ip)]
        assoc = aws("ec2", "associate-address", "--allocation-id", alloc,
                    "--instance-id", pair.a.id)["AssociationId"]
        got = aws("ec2", "describe-addresses", "--public-ips", ip)["Addresses"]
        assert [(x["InstanceId"], x["AssociationId"]) for x in got] == [(pair.a.id, assoc)]
        aws("ec2", "disassociate-address", "--association-id", assoc)
        aws("ec2", "release-address", "--allocation-id", alloc)
        p = aws("ec2", "describe-addresses", "--allocation-ids", alloc, check=False)
        assert p.returncode != 0 and "InvalidAllocationID.NotFound" in p.stderr
    finally:
        release_quietly(ec2, [alloc])


# --- 3. the floating IP pattern (instances that really run) ---------------------------------------

def test_pair_serves_host_names(need_runtime, pair):
    # each instance's page is its own host name (ip-a-b-c-d, from its private DNS name)
    for box in (pair.a, pair.b):
        assert box.page.strip() == box.dns.split(".")[0], (box.id, box.page, box.dns)
    assert pair.a.page != pair.b.page


def test_floating_ip_follows_association(ec2, need_runtime, pair, addresses):
    a, b = pair.a, pair.b
    e = addresses()
    url = f"http://{e.ip}/"
    assert tcp_answer(e.ip) in ("refused", "reset")   # nothing behind it yet

    ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)
    assert http_get(url) == (200, a.page)
    ec2.associate_address(AllocationId=e.alloc, InstanceId=b.id)
    assert http_get(url) == (200, b.page)   # the very next request, no waiting
    assert http_get(url) == (200, b.page)
    assoc = ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)["AssociationId"]
    assert http_get(url) == (200, a.page)

    ec2.disassociate_address(AssociationId=assoc)
    assert tcp_answer(e.ip) in ("refused", "reset")
    assert http_get(f"http://{a.ip}/") == (200, a.page)   # A itself still serves


def test_open_connection_does_not_follow_reassociation(ec2, need_runtime, pair, addresses):
    # a connection made through the address while it led to A ends at A: after the address
    # moves to B it gets no answer from A (and none from B, which it never reached)
    a, b = pair.a, pair.b
    e = addresses()
    ec2.associate_address(AllocationId=e.alloc, InstanceId=a.id)
    assert http_get(f"http://{e.ip}/") == (200, a.page)
    s = socket.create_connection((e.ip, 80), timeout=3)
    try:
        ec2.associate_address(AllocationId=e.alloc, InstanceId=b.id)
        data = b""
        try:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    finally:
        s.close()
    assert a.page.encode() not in data, data
    assert b.page.encode() not in data, data
    assert http_get(f"http://{e.ip}/") == (200, b.page)
