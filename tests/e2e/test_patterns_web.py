"""Patterns 18, 40 and 41 (patterns/<n>-*/run.sh) run against the session server.

18 URL rewriting (a web tier on an instance redirects image URLs to the bucket's website
endpoint, whose routing rules rewrite old paths), 40 operational firewall (per-client
security groups on shared front ends) and 41 web application firewall (a filtering proxy
instance in front of a web tier that admits only the proxy's group).

As in test_patterns_ec2.py: each run.sh runs with --keep as a user would; the test asserts
it passed and said the Observe lines, then checks the observation again on its own with
boto3 and plain HTTP (for 40, by changing another client's access itself), and the `made`
fixture removes what the script made. Runs only against a nimbus whose instances use the
namespace driver; skips when NIMBUS_E2E_ENDPOINT points at a server of someone else's.
"""
import hashlib
import http.client
import re
import socket
import time
import urllib.parse

import pytest

# the shared machinery of the EC2 pattern tests: running a script, reading its output,
# the module's skip conditions and the clean-up of what a script made
from test_patterns_ec2 import (  # noqa: F401  (fixtures are used by name)
    ec2, s3, iam, sqs, made, namespace_driver, pytestmark, run_pattern, has_ok, ok_lines, value, http_get, instance,
)


def raw(url, endpoint, method="GET", body=None, headers=None, timeout=5):
    """(status, headers with lower-case names, body bytes) of one request, redirects not
    followed. *.localhost names (the website endpoints) go to the endpoint's host, with
    the name in the Host header, as curl and browsers resolve them."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname
    if host.endswith(".localhost"):
        host = urllib.parse.urlsplit(endpoint).hostname
    conn = http.client.HTTPConnection(host, u.port or 80, timeout=timeout)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body,
                     headers={"Host": u.netloc, **(headers or {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def follow(url, endpoint, limit=5):
    """Follows redirects like `curl -L`: ([(status, url), ...], final headers, final body)."""
    hops = []
    for _ in range(limit + 1):
        status, headers, body = raw(url, endpoint)
        hops.append((status, url))
        if status not in (301, 302, 303, 307, 308):
            return hops, headers, body
        url = urllib.parse.urljoin(url, headers["location"])
    raise AssertionError(f"too many redirects: {hops}")


# --- 18 URL rewriting ----------------------------------------------------------------------

def test_pattern_18_url_rewriting(endpoint, ec2, s3, made):
    out = run_pattern("18-url-rewriting", endpoint, made)
    assert "pattern 18: all observations hold" in out
    bucket, site = value(out, "bucket"), value(out, "website endpoint")
    web_id, web_ip = value(out, "web instance").split()
    port = urllib.parse.urlsplit(endpoint).port
    assert site == f"http://{bucket}.s3-website-us-east-1.localhost:{port}"
    cat_sha = re.search(r"^uploaded: images/cat\.png \d+ bytes sha256 ([0-9a-f]{64})$", out, re.M).group(1)
    assert has_ok(out, "routing rules: photos/ -> images/ (301), drafts/ -> images/ (302)")
    assert has_ok(out, f"http://{web_ip}/ is the web tier's own page (served by {web_id})")
    assert has_ok(out, f"web tier: GET /images/cat.png -> 301 {site}/images/cat.png")
    assert has_ok(out, f"curl -L http://{web_ip}/images/cat.png: 1 redirect, ends at {site}/images/cat.png, "
                       f"200 image/png, sha256 {cat_sha} (the uploaded bytes)")
    assert has_ok(out, f"website endpoint: GET /photos/cat.png -> 301 {site}/images/cat.png (empty body")
    assert has_ok(out, f"website endpoint: GET /drafts/cat.png -> 302 {site}/images/cat.png (empty body")
    assert has_ok(out, f"curl -L http://{web_ip}/photos/cat.png: 2 redirects (web tier 301, bucket rule 301), "
                       "ends at the object's bytes")
    assert has_ok(out, f"curl -L http://{web_ip}/photos/dog.png (the page's link): the new upload's bytes")

    # the bucket, through the API
    cat = s3.get_object(Bucket=bucket, Key="images/cat.png")
    cat_bytes = cat["Body"].read()
    assert hashlib.sha256(cat_bytes).hexdigest() == cat_sha and cat["ContentType"] == "image/png"
    assert cat_bytes.startswith(b"\x89PNG\r\n\x1a\n")
    rules = s3.get_bucket_website(Bucket=bucket)["RoutingRules"]
    assert [(r["Condition"]["KeyPrefixEquals"], r["Redirect"]["ReplaceKeyPrefixWith"], r["Redirect"]["HttpRedirectCode"])
            for r in rules] == [("photos/", "images/", "301"), ("drafts/", "images/", "302")]
    assert instance(ec2, web_id)["State"]["Name"] == "running"

    # the web tier redirects, the bytes never pass through it
    status, headers, body = raw(f"http://{web_ip}/images/cat.png", endpoint)
    assert (status, headers["location"], body) == (301, f"{site}/images/cat.png", b"")
    assert headers["x-served-by"] == web_id
    hops, headers, body = follow(f"http://{web_ip}/images/cat.png", endpoint)
    assert hops == [(301, f"http://{web_ip}/images/cat.png"), (200, f"{site}/images/cat.png")]
    assert body == cat_bytes and headers["content-type"] == "image/png" and "x-served-by" not in headers
    # the bucket's routing rules, as S3 answers them (no body, absolute Location on the site)
    for prefix, code in (("photos", 301), ("drafts", 302)):
        status, headers, body = raw(f"{site}/{prefix}/cat.png", endpoint)
        assert (status, headers["location"], body) == (code, f"{site}/images/cat.png", b""), prefix
        assert headers.get("x-amz-request-id")
    hops, _, body = follow(f"http://{web_ip}/photos/cat.png", endpoint)
    assert [s for s, _ in hops] == [301, 301, 200] and hops[1][1] == f"{site}/photos/cat.png"
    assert body == cat_bytes
    # an upload made now is served through the web tier at once
    s3.put_object(Bucket=bucket, Key="images/new.png", Body=b"\x89PNG\r\n\x1a\nnew", ContentType="image/png")
    hops, headers, body = follow(f"http://{web_ip}/drafts/new.png", endpoint)
    assert [s for s, _ in hops] == [301, 302, 200] and body == b"\x89PNG\r\n\x1a\nnew"


# --- 40 operational firewall -------------------------------------------------------------------

def probe(client_ip, fe_ips, timeout=6):
    """What a client instance gets from every front end: {front end IP: "ok"|"failed"}."""
    r = http_get(f"http://{client_ip}:8080/probe?targets={','.join(fe_ips)}", timeout=timeout)
    assert r is not None and r[0] == 200, f"no answer from the probe on {client_ip}: {r}"
    return {line.split()[0]: line.split()[1] for line in r[1].splitlines() if line.strip()}


def test_pattern_40_operational_firewall(endpoint, ec2, made):
    out = run_pattern("40-operational-firewall", endpoint, made)
    assert "pattern 40: all observations hold" in out
    groups = dict((o, (c, f)) for o, c, f in re.findall(
        r"^client ([abc]): group (sg-\w+), admitted by front-end group (sg-\w+)$", out, re.M))
    assert sorted(groups) == ["a", "b", "c"]
    fes = [line.split() for line in re.findall(r"^front end \d: (.+)$", out, re.M)]
    clients = {cl: rest.split() for cl, rest in re.findall(r"^client instance (\w+): (.+)$", out, re.M)}
    assert len(fes) == 2 and sorted(clients) == ["a1", "b1", "b2", "c1"]
    fe_ips = [ip for _, ip in fes]
    for cl, (_, ip) in clients.items():
        assert has_ok(out, f"client {cl} ({ip}) -> both front ends: ")
    assert has_ok(out, f"this machine -> front end {fe_ips[0]}:80: no answer")
    assert has_ok(out, "client b before the revoke: ")
    assert re.search(r"^  ok    client b cut off [\d.]+ s after RevokeSecurityGroupIngress returned: (\d+)/\1 probes failed",
                     out, re.M), out
    assert re.search(r"^  ok    client b restored [\d.]+ s after AuthorizeSecurityGroupIngress returned: (\d+)/\1 probes answered",
                     out, re.M), out
    for o in "ac":
        m = re.search(rf"^  ok    client {o} kept its access throughout: (\d+)/(\d+) probes answered \((\d+) while", out, re.M)
        assert m and m.group(1) == m.group(2) and int(m.group(3)) > 0, out

    # the groups and memberships, through the API
    fe_groups = {f for _, f in groups.values()}
    for o, (client_sg, fe_sg) in groups.items():
        [g] = ec2.describe_security_groups(GroupIds=[fe_sg])["SecurityGroups"]
        assert [(p["IpProtocol"], p["FromPort"], [x["GroupId"] for x in p["UserIdGroupPairs"]], p["IpRanges"])
                for p in g["IpPermissions"]] == [("tcp", 80, [client_sg], [])], o
    for iid, _ in fes:
        assert {g["GroupId"] for g in instance(ec2, iid)["SecurityGroups"]} == fe_groups
    for cl, (iid, _) in clients.items():
        assert [g["GroupId"] for g in instance(ec2, iid)["SecurityGroups"]] == [groups[cl[0]][0]]

    # change another client's access ourselves: only client c is cut, then restored
    def everyone():
        return {cl: probe(ip, fe_ips) for cl, (_, ip) in clients.items()}

    def wait_until(pred, seconds=15):
        seen, end = None, time.time() + seconds
        while time.time() < end:
            seen = everyone()
            if pred(seen):
                return seen
        raise AssertionError(f"not reached in {seconds} s: {seen}")

    all_ok = {fe: "ok" for fe in fe_ips}
    all_failed = {fe: "failed" for fe in fe_ips}
    assert everyone() == {cl: all_ok for cl in clients}
    c_perm = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": groups["c"][0]}]}]
    ec2.revoke_security_group_ingress(GroupId=groups["c"][1], IpPermissions=c_perm)
    seen = wait_until(lambda s: s["c1"] == all_failed)
    assert {cl: s for cl, s in seen.items() if cl != "c1"} == {cl: all_ok for cl in ("a1", "b1", "b2")}
    with pytest.raises(OSError):   # and this machine never was a client
        socket.create_connection((fe_ips[1], 80), timeout=2).close()
    ec2.authorize_security_group_ingress(GroupId=groups["c"][1], IpPermissions=c_perm)
    wait_until(lambda s: s == {cl: all_ok for cl in clients})


# --- 41 web application firewall ------------------------------------------------------------------

def test_pattern_41_web_application_firewall(endpoint, ec2, made):
    out = run_pattern("41-web-application-firewall", endpoint, made)
    assert "pattern 41: all observations hold" in out
    waf_sg, web_sg = re.fullmatch(r"waf (\S+), web (\S+)", value(out, "groups")).groups()
    web_id, web_ip = value(out, "web instance").split()
    waf_id, waf_ip = value(out, "proxy instance").split()
    assert has_ok(out, f"GET /products?id=2 -> 200 \"2 gadget 9.99\" (X-WAF: passed, served by {web_id}, "
                       f"which saw the proxy's address {waf_ip})")
    blocked = re.findall(r"^  ok    (GET|POST) (\S+).* -> 403 from the proxy, rule (sqli-[a-z]+): ", out, re.M)
    assert [(m, p.split("?")[0], rule) for m, p, rule in blocked] == [
        ("GET", "/products", "sqli-tautology"), ("GET", "/search", "sqli-union"),
        ("POST", "/login", "sqli-comment"), ("GET", "/products", "sqli-stacked")], out
    assert has_ok(out, "the web tier's own log of requests: ")
    assert has_ok(out, f"this machine -> web tier http://{web_ip}/ directly: no answer")

    # the web tier admits the proxy's group only; each tier is in its own group
    [g] = ec2.describe_security_groups(GroupIds=[web_sg])["SecurityGroups"]
    assert [(p["IpProtocol"], p["FromPort"], [x["GroupId"] for x in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in g["IpPermissions"]] == [("tcp", 80, [waf_sg], [])]
    assert [x["GroupId"] for x in instance(ec2, web_id)["SecurityGroups"]] == [web_sg]
    assert [x["GroupId"] for x in instance(ec2, waf_id)["SecurityGroups"]] == [waf_sg]

    # a normal request passes, from the web tier, which sees the proxy as its caller
    status, headers, body = raw(f"http://{waf_ip}/products?id=1", endpoint)
    assert (status, body) == (200, b"1 widget 2.5\n")
    assert (headers["x-waf"], headers["x-served-by"], headers["x-client-address"]) == ("passed", web_id, waf_ip)
    # injections the script did not send are refused too, and never reach the web tier
    for path, rule in (("/search?q=%27%20OR%20%27a%27%3D%27a", "sqli-tautology"),
                       ("/products?id=1%20AND%20SLEEP(5)", "sqli-timing"),
                       ("/products?id=-1%20uNiOn%20/**/%20sElEcT%201,name,password%20FROM%20users", "sqli-union")):
        status, headers, body = raw(f"http://{waf_ip}{path}", endpoint)
        assert (status, headers.get("x-waf"), headers.get("x-waf-rule")) == (403, "blocked", rule), (path, body)
        assert "x-served-by" not in headers
    status, headers, body = raw(f"http://{waf_ip}/login", endpoint, method="POST",
                                body=b"user=admin%27%20OR%201%3D1--&password=x",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, headers.get("x-waf")) == (403, "blocked"), body
    r = http_get(f"http://{waf_ip}/requests")
    assert r is not None and r[0] == 200
    seen = r[1].splitlines()
    assert "GET /products?id=1" in seen and "GET /products?id=2" in seen
    assert not [s for s in seen if re.search(r"(?i)union|or%20|sleep|drop|%27|POST", s)], seen
    # going around the proxy: dropped by the web tier's security group
    with pytest.raises(OSError):
        socket.create_connection((web_ip, 80), timeout=2).close()
    assert http_get(f"http://{web_ip}/products?id=1", timeout=2) is None
