"""EC2, first slice: regions and zones, the default VPC and its subnets, security
groups and their rules, tags, pagination. Driven through boto3 (query protocol) and
the aws CLI, asserting what the EC2 API reference documents.

Written before nimbus's EC2 service and validated against moto
(NIMBUS_E2E_ENDPOINT=http://127.0.0.1:PORT NIMBUS_E2E_PEER=moto); the checks where
moto departs from documented AWS behaviour are marked `moto_gap` and stay strict
for nimbus. Every test makes its own uniquely named resources and removes them;
the shared default VPC / default group are only read (tags put on the default VPC
use a unique key and are deleted again).
"""
import ipaddress
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from s3_helpers import ON_MOTO, moto_gap  # noqa: F401  (peer detection lives there)


# --- helpers / fixtures ---------------------------------------------------------

def uniq(prefix="g"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(excinfo):
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def tcp(port_from, port_to=None, cidr=None, group=None, desc=None):
    p = {"IpProtocol": "tcp", "FromPort": port_from, "ToPort": port_to if port_to is not None else port_from}
    if cidr:
        r = {"CidrIp": cidr}
        if desc:
            r["Description"] = desc
        p["IpRanges"] = [r]
    if group:
        g = {"GroupId": group}
        if desc:
            g["Description"] = desc
        p["UserIdGroupPairs"] = [g]
    return p


ALL_TO_ANYWHERE = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


def flat(perms):
    """IpPermissions -> set of (proto, from, to, source) with one entry per source."""
    out = set()
    for p in perms:
        # AWS omits FromPort/ToPort for protocol -1; count that as -1/-1
        key = (p["IpProtocol"], p.get("FromPort", -1), p.get("ToPort", -1))
        for r in p.get("IpRanges", []):
            out.add(key + (r["CidrIp"],))
        for g in p.get("UserIdGroupPairs", []):
            out.add(key + (g["GroupId"],))
    return out


def all_traffic(p):
    # AWS omits FromPort/ToPort for protocol -1; some implementations send -1.
    return p["IpProtocol"] == "-1" and p.get("FromPort", -1) == -1 and p.get("ToPort", -1) == -1


@pytest.fixture
def ec2(client):
    return client("ec2")


@pytest.fixture
def default_vpc(ec2):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]["VpcId"]


@pytest.fixture
def make_group(ec2):
    """make_group(**create_kwargs) -> GroupId; every group made is deleted afterwards
    (after revoking its ingress rules, so cross-references do not block deletion)."""
    made = []

    def make(name=None, description="nimbus e2e", **kw):
        r = ec2.create_security_group(GroupName=name or uniq(), Description=description, **kw)
        made.append(r["GroupId"])
        return r["GroupId"]

    yield make
    for gid in made:
        try:
            g = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
            if g["IpPermissions"]:
                ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=g["IpPermissions"])
        except ClientError:
            pass
    for gid in reversed(made):
        try:
            ec2.delete_security_group(GroupId=gid)
        except ClientError:
            pass


def group(ec2, gid):
    return ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]


# --- 1. regions and availability zones ----------------------------------------------

def test_describe_regions(ec2):
    regions = {r["RegionName"]: r for r in ec2.describe_regions()["Regions"]}
    for name in ("us-east-1", "eu-west-1"):
        assert name in regions
        assert regions[name]["Endpoint"] == f"ec2.{name}.amazonaws.com"
        assert regions[name]["OptInStatus"] == "opt-in-not-required"


def test_describe_regions_by_name(ec2):
    r = ec2.describe_regions(RegionNames=["eu-west-1"])["Regions"]
    assert [x["RegionName"] for x in r] == ["eu-west-1"]
    r = ec2.describe_regions(RegionNames=["us-east-1", "eu-west-1"])["Regions"]
    assert sorted(x["RegionName"] for x in r) == ["eu-west-1", "us-east-1"]


@moto_gap("DescribeRegions ignores the region-name filter")
def test_describe_regions_filter_region_name(ec2):
    r = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["us-east-1", "eu-west-1"]}])["Regions"]
    assert sorted(x["RegionName"] for x in r) == ["eu-west-1", "us-east-1"]


@moto_gap("DescribeRegions with an unknown RegionNames entry returns an empty list instead of an error")
def test_describe_regions_unknown_name(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_regions(RegionNames=["xx-nowhere-9"])
    assert err(e) == ("InvalidParameterValue", 400)


def test_describe_availability_zones(ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    names = [z["ZoneName"] for z in zones]
    assert "us-east-1a" in names and "us-east-1b" in names
    ids = set()
    for z in zones:
        assert re.fullmatch(r"us-east-1[a-z]", z["ZoneName"])
        assert re.fullmatch(r"use1-az\d+", z["ZoneId"])
        assert z["State"] == "available"
        assert z["RegionName"] == "us-east-1"
        assert z["ZoneType"] == "availability-zone"
        ids.add(z["ZoneId"])
    assert len(ids) == len(zones)  # zone ids are unique


def test_describe_availability_zones_filter_zone_name(ec2):
    zones = ec2.describe_availability_zones(
        Filters=[{"Name": "zone-name", "Values": ["us-east-1b"]}])["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1b"]
    zones = ec2.describe_availability_zones(ZoneNames=["us-east-1a"])["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a"]


# --- 2. the default VPC and its subnets -----------------------------------------------

def test_default_vpc(ec2):
    vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]]
    assert len(vpcs) == 1
    v = vpcs[0]
    assert v["VpcId"].startswith("vpc-")
    assert v["CidrBlock"] == "172.31.0.0/16"
    assert v["State"] == "available"
    assert v["InstanceTenancy"] == "default"
    by_filter = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert [x["VpcId"] for x in by_filter] == [v["VpcId"]]
    by_id = ec2.describe_vpcs(VpcIds=[v["VpcId"]])["Vpcs"]
    assert [x["VpcId"] for x in by_id] == [v["VpcId"]]


def test_describe_vpcs_unknown_id(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(VpcIds=["vpc-00000000000000000"])
    assert err(e) == ("InvalidVpcID.NotFound", 400)


def test_default_subnets(ec2, default_vpc):
    zones = {z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == sorted(zones)  # one per AZ
    vpc_net = ipaddress.ip_network("172.31.0.0/16")
    nets = []
    for s in subnets:
        assert s["SubnetId"].startswith("subnet-")
        assert s["VpcId"] == default_vpc
        assert s["DefaultForAz"] is True
        assert s["MapPublicIpOnLaunch"] is True
        assert s["State"] == "available"
        assert s["AvailableIpAddressCount"] == 4091  # a /20 minus the 5 addresses AWS reserves
        net = ipaddress.ip_network(s["CidrBlock"])
        assert net.prefixlen == 20 and net.subnet_of(vpc_net)
        nets.append(net)
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b)


def test_describe_subnets_filters(ec2, default_vpc):
    in_vpc = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"]
    assert in_vpc and all(s["VpcId"] == default_vpc for s in in_vpc)
    a = ec2.describe_subnets(Filters=[
        {"Name": "vpc-id", "Values": [default_vpc]},
        {"Name": "availability-zone", "Values": ["us-east-1a"]},
        {"Name": "default-for-az", "Values": ["true"]},
    ])["Subnets"]
    assert len(a) == 1 and a[0]["AvailabilityZone"] == "us-east-1a"
    by_id = ec2.describe_subnets(SubnetIds=[a[0]["SubnetId"]])["Subnets"]
    assert [s["SubnetId"] for s in by_id] == [a[0]["SubnetId"]]
    none = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": ["vpc-00000000000000000"]}])["Subnets"]
    assert none == []


def test_describe_subnets_unknown_id(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_subnets(SubnetIds=["subnet-00000000000000000"])
    assert err(e) == ("InvalidSubnetID.NotFound", 400)


# --- 3. security groups ---------------------------------------------------------------------

def test_default_security_group(ec2, default_vpc):
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [default_vpc]},
        {"Name": "group-name", "Values": ["default"]},
    ])["SecurityGroups"]
    assert len(groups) == 1
    g = groups[0]
    assert g["GroupId"].startswith("sg-")
    assert g["Description"] == "default VPC security group"
    assert g["VpcId"] == default_vpc
    assert len(g["IpPermissionsEgress"]) == 1
    e = g["IpPermissionsEgress"][0]
    assert all_traffic(e) and [r["CidrIp"] for r in e["IpRanges"]] == ["0.0.0.0/0"]


@moto_gap("the default security group has no ingress rule allowing traffic from itself")
def test_default_security_group_allows_itself(ec2, default_vpc):
    g = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [default_vpc]},
        {"Name": "group-name", "Values": ["default"]},
    ])["SecurityGroups"][0]
    assert len(g["IpPermissions"]) == 1
    p = g["IpPermissions"][0]
    assert all_traffic(p)
    assert [x["GroupId"] for x in p["UserIdGroupPairs"]] == [g["GroupId"]]
    assert p.get("IpRanges", []) == []


def test_create_security_group(ec2, make_group, default_vpc):
    name = uniq()
    gid = make_group(name=name, description="web tier")
    assert re.fullmatch(r"sg-[0-9a-f]{8,17}", gid)
    g = group(ec2, gid)
    assert g["GroupName"] == name
    assert g["Description"] == "web tier"
    assert g["VpcId"] == default_vpc  # VpcId omitted => the default VPC
    assert g["IpPermissions"] == []
    assert len(g["IpPermissionsEgress"]) == 1
    e = g["IpPermissionsEgress"][0]
    assert all_traffic(e) and [r["CidrIp"] for r in e["IpRanges"]] == ["0.0.0.0/0"]
    # explicit VpcId is accepted too
    gid2 = make_group(VpcId=default_vpc)
    assert group(ec2, gid2)["VpcId"] == default_vpc


def test_create_security_group_duplicate(ec2, make_group, default_vpc):
    name = uniq()
    make_group(name=name)
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName=name, Description="again", VpcId=default_vpc)
    assert err(e) == ("InvalidGroup.Duplicate", 400)


def test_describe_security_groups_selectors(ec2, make_group, default_vpc):
    name, key = uniq(), uniq("k")
    gid = make_group(name=name)
    other = make_group()
    ec2.create_tags(Resources=[gid], Tags=[{"Key": key, "Value": "blue"}])
    ec2.create_tags(Resources=[other], Tags=[{"Key": key, "Value": "green"}])

    def ids(**kw):
        return sorted(g["GroupId"] for g in ec2.describe_security_groups(**kw)["SecurityGroups"])

    assert ids(GroupIds=[gid]) == [gid]
    assert ids(GroupIds=[gid, other]) == sorted([gid, other])
    assert ids(GroupNames=[name]) == [gid]
    assert ids(Filters=[{"Name": "group-name", "Values": [name]}]) == [gid]
    assert ids(Filters=[{"Name": "group-id", "Values": [gid]}]) == [gid]
    assert ids(Filters=[{"Name": f"tag:{key}", "Values": ["blue"]}]) == [gid]
    assert ids(Filters=[{"Name": "tag-key", "Values": [key]}]) == sorted([gid, other])
    in_vpc = ids(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])
    assert gid in in_vpc and other in in_vpc
    assert ids(Filters=[{"Name": "vpc-id", "Values": ["vpc-00000000000000000"]}]) == []
    # several filters are ANDed, several values of one filter are ORed
    assert ids(Filters=[{"Name": "group-name", "Values": [name]},
                        {"Name": f"tag:{key}", "Values": ["green"]}]) == []
    assert ids(Filters=[{"Name": f"tag:{key}", "Values": ["blue", "green"]}]) == sorted([gid, other])


def test_describe_security_groups_unknown(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupIds=["sg-00000000000000000"])
    assert err(e) == ("InvalidGroup.NotFound", 400)
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupNames=[uniq("missing")])
    assert err(e) == ("InvalidGroup.NotFound", 400)


def test_authorize_ingress(ec2, make_group):
    gid, src = make_group(), make_group()

    def authorize(perm):
        r = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[perm])
        assert r["Return"] is True
        [rule] = r["SecurityGroupRules"]
        assert rule["SecurityGroupRuleId"].startswith("sgr-")
        assert rule["GroupId"] == gid
        assert rule["IsEgress"] is False
        assert rule["IpProtocol"] == "tcp"
        return rule

    ssh = authorize(tcp(22, cidr="10.0.0.0/8", desc="ssh from inside"))
    assert (ssh["FromPort"], ssh["ToPort"], ssh["CidrIpv4"]) == (22, 22, "10.0.0.0/8")
    assert ssh["Description"] == "ssh from inside"
    web = authorize(tcp(80, 81, cidr="0.0.0.0/0"))
    assert (web["FromPort"], web["ToPort"], web["CidrIpv4"]) == (80, 81, "0.0.0.0/0")
    pg = authorize(tcp(5432, group=src))
    assert (pg["FromPort"], pg["ToPort"]) == (5432, 5432)
    assert pg["ReferencedGroupInfo"]["GroupId"] == src
    assert "CidrIpv4" not in pg
    assert len({ssh["SecurityGroupRuleId"], web["SecurityGroupRuleId"], pg["SecurityGroupRuleId"]}) == 3

    g = group(ec2, gid)
    assert flat(g["IpPermissions"]) == {
        ("tcp", 22, 22, "10.0.0.0/8"), ("tcp", 80, 81, "0.0.0.0/0"), ("tcp", 5432, 5432, src)}
    p22 = next(p for p in g["IpPermissions"] if p["FromPort"] == 22)
    assert p22["IpRanges"] == [{"CidrIp": "10.0.0.0/8", "Description": "ssh from inside"}]
    p5432 = next(p for p in g["IpPermissions"] if p["FromPort"] == 5432)
    assert [x["GroupId"] for x in p5432["UserIdGroupPairs"]] == [src]
    # egress untouched
    assert len(g["IpPermissionsEgress"]) == 1 and all_traffic(g["IpPermissionsEgress"][0])


@moto_gap("AuthorizeSecurityGroupIngress with several IpPermissions returns only the last one's rules")
def test_authorize_ingress_several_permissions(ec2, make_group):
    gid, src = make_group(), make_group()
    perms = [
        tcp(22, cidr="10.0.0.0/8", desc="ssh from inside"),
        tcp(80, 81, cidr="0.0.0.0/0"),
        tcp(5432, group=src),
    ]
    r = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=perms)
    assert r["Return"] is True
    rules = r["SecurityGroupRules"]
    assert len(rules) == 3
    assert all(x["GroupId"] == gid and x["IsEgress"] is False for x in rules)
    by_port = {x["FromPort"]: x for x in rules}
    assert by_port[22]["CidrIpv4"] == "10.0.0.0/8" and by_port[22]["Description"] == "ssh from inside"
    assert by_port[80]["ToPort"] == 81 and by_port[80]["CidrIpv4"] == "0.0.0.0/0"
    assert by_port[5432]["ReferencedGroupInfo"]["GroupId"] == src
    assert flat(group(ec2, gid)["IpPermissions"]) == {
        ("tcp", 22, 22, "10.0.0.0/8"), ("tcp", 80, 81, "0.0.0.0/0"), ("tcp", 5432, 5432, src)}


def test_authorize_ingress_duplicate(ec2, make_group):
    gid = make_group()
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, cidr="10.0.0.0/8")])
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, cidr="10.0.0.0/8")])
    assert err(e) == ("InvalidPermission.Duplicate", 400)
    assert flat(group(ec2, gid)["IpPermissions"]) == {("tcp", 22, 22, "10.0.0.0/8")}


def test_authorize_ingress_unknown_group(ec2):
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId="sg-00000000000000000",
                                             IpPermissions=[tcp(22, cidr="10.0.0.0/8")])
    assert err(e) == ("InvalidGroup.NotFound", 400)


def test_revoke_ingress(ec2, make_group):
    gid = make_group()
    ec2.authorize_security_group_ingress(
        GroupId=gid, IpPermissions=[tcp(22, cidr="10.0.0.0/8", desc="ssh"), tcp(443, cidr="0.0.0.0/0")])
    # the description need not be given to revoke a rule
    r = ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, cidr="10.0.0.0/8")])
    assert r["Return"] is True
    assert not r.get("UnknownIpPermissions")
    assert flat(group(ec2, gid)["IpPermissions"]) == {("tcp", 443, 443, "0.0.0.0/0")}


@moto_gap("revoking a rule that does not exist in a default-VPC group raises InvalidPermission.NotFound")
def test_revoke_ingress_unknown_rule_default_vpc(ec2, make_group):
    # API reference: "For a default VPC, if the values you specify do not match the
    # existing rule's values, no error is returned, and the output describes the
    # security group rules that were not revoked." (Non-default VPCs answer
    # InvalidPermission.NotFound; this slice has only the default VPC.)
    gid = make_group()
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(443, cidr="0.0.0.0/0")])
    r = ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(23, cidr="10.0.0.0/8")])
    unknown = r.get("UnknownIpPermissions", [])
    assert flat(unknown) == {("tcp", 23, 23, "10.0.0.0/8")}
    assert flat(group(ec2, gid)["IpPermissions"]) == {("tcp", 443, 443, "0.0.0.0/0")}


def test_egress_rules(ec2, make_group):
    gid = make_group()
    # the default egress rule is a real rule: authorizing it again is a duplicate
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[ALL_TO_ANYWHERE])
    assert err(e) == ("InvalidPermission.Duplicate", 400)

    r = ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, cidr="10.1.0.0/16")])
    assert r["Return"] is True
    [rule] = r["SecurityGroupRules"]
    assert rule["IsEgress"] is True and rule["GroupId"] == gid
    assert rule["SecurityGroupRuleId"].startswith("sgr-")
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]) == ("tcp", 443, 443, "10.1.0.0/16")
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, cidr="10.1.0.0/16")])
    assert err(e) == ("InvalidPermission.Duplicate", 400)
    assert flat(group(ec2, gid)["IpPermissionsEgress"]) == {
        ("-1", -1, -1, "0.0.0.0/0"), ("tcp", 443, 443, "10.1.0.0/16")}

    r = ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[ALL_TO_ANYWHERE])
    assert r["Return"] is True
    r = ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, cidr="10.1.0.0/16")])
    assert r["Return"] is True
    g = group(ec2, gid)
    assert g["IpPermissionsEgress"] == []
    assert g["IpPermissions"] == []


@moto_gap("revoking an egress rule that does not exist in a default-VPC group raises InvalidPermission.NotFound")
def test_revoke_egress_unknown_rule_default_vpc(ec2, make_group):
    gid = make_group()
    r = ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[tcp(25, cidr="10.9.0.0/16")])
    assert flat(r.get("UnknownIpPermissions", [])) == {("tcp", 25, 25, "10.9.0.0/16")}
    assert len(group(ec2, gid)["IpPermissionsEgress"]) == 1


def test_delete_security_group(ec2, default_vpc):
    name = uniq()
    gid = ec2.create_security_group(GroupName=name, Description="to delete")["GroupId"]
    ec2.delete_security_group(GroupId=gid)
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupIds=[gid])
    assert err(e) == ("InvalidGroup.NotFound", 400)
    assert ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"] == []
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=gid)
    assert err(e) == ("InvalidGroup.NotFound", 400)
    # the name is free again
    gid2 = ec2.create_security_group(GroupName=name, Description="again", VpcId=default_vpc)["GroupId"]
    assert gid2 != gid
    ec2.delete_security_group(GroupId=gid2)


@moto_gap("deleting a group referenced by another group's rule succeeds instead of DependencyViolation")
def test_delete_referenced_group(ec2, make_group):
    target, referrer = make_group(), make_group()
    ec2.authorize_security_group_ingress(GroupId=referrer, IpPermissions=[tcp(5432, group=target)])
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=target)
    assert err(e) == ("DependencyViolation", 400)
    assert group(ec2, target)["GroupId"] == target
    ec2.revoke_security_group_ingress(GroupId=referrer, IpPermissions=[tcp(5432, group=target)])
    ec2.delete_security_group(GroupId=target)
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupIds=[target])
    assert err(e) == ("InvalidGroup.NotFound", 400)


@moto_gap("the default security group can be deleted (no CannotDelete)")
def test_delete_default_group(ec2, default_vpc):
    g = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [default_vpc]},
        {"Name": "group-name", "Values": ["default"]},
    ])["SecurityGroups"][0]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=g["GroupId"])
    assert err(e) == ("CannotDelete", 400)
    assert group(ec2, g["GroupId"])["GroupName"] == "default"


def test_describe_security_group_rules(ec2, make_group):
    gid, src = make_group(), make_group()
    added_ids = set()
    for perm in (tcp(22, cidr="10.0.0.0/8", desc="ssh"), tcp(5432, group=src)):
        added = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[perm])
        added_ids |= {r["SecurityGroupRuleId"] for r in added["SecurityGroupRules"]}
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    assert len(rules) == 3
    assert all(r["GroupId"] == gid and r["SecurityGroupRuleId"].startswith("sgr-") for r in rules)
    assert len({r["SecurityGroupRuleId"] for r in rules}) == 3
    ingress = [r for r in rules if not r["IsEgress"]]
    egress = [r for r in rules if r["IsEgress"]]
    assert {r["SecurityGroupRuleId"] for r in ingress} == added_ids
    [e] = egress
    assert e["IpProtocol"] == "-1" and e["CidrIpv4"] == "0.0.0.0/0"
    assert e["FromPort"] == -1 and e["ToPort"] == -1
    ssh = next(r for r in ingress if r["FromPort"] == 22)
    assert (ssh["IpProtocol"], ssh["ToPort"], ssh["CidrIpv4"], ssh["Description"]) == ("tcp", 22, "10.0.0.0/8", "ssh")
    pg = next(r for r in ingress if r["FromPort"] == 5432)
    assert pg["ReferencedGroupInfo"]["GroupId"] == src
    # by rule id
    one = ec2.describe_security_group_rules(SecurityGroupRuleIds=[ssh["SecurityGroupRuleId"]])["SecurityGroupRules"]
    assert [r["SecurityGroupRuleId"] for r in one] == [ssh["SecurityGroupRuleId"]]


# --- 4. tags --------------------------------------------------------------------------------------

def test_tags_on_security_group(ec2, make_group):
    gid = make_group()
    k1, k2, k3 = uniq("k"), uniq("k"), uniq("k")
    ec2.create_tags(Resources=[gid], Tags=[{"Key": k1, "Value": "v1"}, {"Key": k2, "Value": "v2"},
                                           {"Key": k3, "Value": ""}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [gid]}])["Tags"]
    assert sorted((t["Key"], t["Value"], t["ResourceId"], t["ResourceType"]) for t in tags) == sorted([
        (k1, "v1", gid, "security-group"), (k2, "v2", gid, "security-group"), (k3, "", gid, "security-group")])
    assert {t["Key"]: t["Value"] for t in group(ec2, gid)["Tags"]} == {k1: "v1", k2: "v2", k3: ""}

    by_key = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["security-group"]},
                                        {"Name": "key", "Values": [k1]}])["Tags"]
    assert [(t["ResourceId"], t["Value"]) for t in by_key] == [(gid, "v1")]
    by_value = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [gid]},
                                          {"Name": "value", "Values": ["v2"]}])["Tags"]
    assert [t["Key"] for t in by_value] == [k2]
    assert ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["vpc"]},
                                      {"Name": "key", "Values": [k1]}])["Tags"] == []

    # overwrite a value
    ec2.create_tags(Resources=[gid], Tags=[{"Key": k1, "Value": "v1b"}])
    assert {t["Key"]: t["Value"] for t in group(ec2, gid)["Tags"]}[k1] == "v1b"

    # DeleteTags with a Value deletes only when the value matches
    ec2.delete_tags(Resources=[gid], Tags=[{"Key": k1, "Value": "not-it"}])
    assert k1 in {t["Key"] for t in group(ec2, gid)["Tags"]}
    ec2.delete_tags(Resources=[gid], Tags=[{"Key": k1, "Value": "v1b"}])
    # ... and without a Value, whatever the value
    ec2.delete_tags(Resources=[gid], Tags=[{"Key": k2}])
    assert {t["Key"]: t["Value"] for t in group(ec2, gid)["Tags"]} == {k3: ""}
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [gid]}])["Tags"]
    assert [t["Key"] for t in tags] == [k3]


def test_tags_on_default_vpc(ec2, default_vpc):
    key = uniq("k")
    ec2.create_tags(Resources=[default_vpc], Tags=[{"Key": key, "Value": "shared"}])
    try:
        tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["vpc"]},
                                          {"Name": "key", "Values": [key]}])["Tags"]
        assert [(t["ResourceId"], t["ResourceType"], t["Value"]) for t in tags] == [(default_vpc, "vpc", "shared")]
        vpc = ec2.describe_vpcs(VpcIds=[default_vpc])["Vpcs"][0]
        assert {t["Key"]: t["Value"] for t in vpc.get("Tags", [])}[key] == "shared"
        found = ec2.describe_vpcs(Filters=[{"Name": f"tag:{key}", "Values": ["shared"]}])["Vpcs"]
        assert [v["VpcId"] for v in found] == [default_vpc]
        assert ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["security-group"]},
                                          {"Name": "key", "Values": [key]}])["Tags"] == []
    finally:
        ec2.delete_tags(Resources=[default_vpc], Tags=[{"Key": key}])
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"] == []


def test_create_security_group_with_tag_specifications(ec2, make_group):
    key = uniq("k")
    name = uniq()
    gid = make_group(name=name, TagSpecifications=[{
        "ResourceType": "security-group",
        "Tags": [{"Key": key, "Value": "ts"}, {"Key": "Name", "Value": name}]}])
    assert {t["Key"]: t["Value"] for t in group(ec2, gid)["Tags"]} == {key: "ts", "Name": name}
    found = ec2.describe_security_groups(Filters=[{"Name": f"tag:{key}", "Values": ["ts"]}])["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [gid]
    tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": [key]}])["Tags"]
    assert [(t["ResourceId"], t["ResourceType"]) for t in tags] == [(gid, "security-group")]


def test_create_tags_unknown_resource(ec2):
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=["sg-00000000000000000"], Tags=[{"Key": "k", "Value": "v"}])
    code, status = err(e)
    assert status == 400
    assert code.endswith(".NotFound"), code


# --- 5. pagination -------------------------------------------------------------------------------

@moto_gap("DescribeSecurityGroups ignores MaxResults and never returns a NextToken")
def test_describe_security_groups_pagination(ec2, make_group):
    key = uniq("page")
    made = {make_group(TagSpecifications=[{"ResourceType": "security-group",
                                           "Tags": [{"Key": key, "Value": "1"}]}]) for _ in range(12)}
    seen, pages, token = [], 0, None
    while True:
        kw = {"Filters": [{"Name": "tag-key", "Values": [key]}], "MaxResults": 5}
        if token:
            kw["NextToken"] = token
        r = ec2.describe_security_groups(**kw)
        pages += 1
        assert len(r["SecurityGroups"]) <= 5
        seen += [g["GroupId"] for g in r["SecurityGroups"]]
        token = r.get("NextToken")
        if not token:
            break
        assert pages < 20
    assert len(seen) == len(set(seen))  # no group twice
    assert set(seen) == made
    assert pages >= 3

    # the paginator walks the same set
    pager = ec2.get_paginator("describe_security_groups")
    ids = [g["GroupId"]
           for page in pager.paginate(Filters=[{"Name": "tag-key", "Values": [key]}],
                                      PaginationConfig={"PageSize": 5})
           for g in page["SecurityGroups"]]
    assert sorted(ids) == sorted(made)


# --- 6. the aws CLI -----------------------------------------------------------------------------

def test_cli_describe_default_group(aws, default_vpc):
    out = aws("ec2", "describe-security-groups", "--group-names", "default")
    groups = out["SecurityGroups"]
    assert len(groups) == 1
    g = groups[0]
    assert g["GroupName"] == "default"
    assert g["VpcId"] == default_vpc
    assert g["GroupId"].startswith("sg-")
    assert g["Description"] == "default VPC security group"
