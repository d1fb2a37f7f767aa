"""Patterns 27 (queuing chain) and 28 (priority queue) run against the session server.

Each run.sh is the user's walk-through: queues, a role for the workers, worker instances
that really run (their user data starts a boto3 worker that uses the instance profile's
credentials from the metadata service), and every observation printed as ok/FAIL. The
tests run it as a user would (stock `aws` CLI from this venv first on PATH, test
credentials, NIMBUS_ENDPOINT at the server), assert it passed and said the key lines, and
then check the observation again on their own with boto3: the queues' attributes, and
every result read back from the output queue (the scripts put the results back after
reading them) and checked here independently.

The scripts run with --keep; every script lists what it made as "made: KIND ID" lines, and
the `made` fixture removes those afterwards (queues, instances, the role with its policy
and its instance profile), whether the test passed or not.

Runs only against a nimbus whose instances use the namespace driver (Linux, root).
"""
import re

# the shared machinery of the EC2 pattern tests: running a script, reading its output,
# the module's skip conditions and the clean-up of what a script made
from test_patterns_ec2 import (  # noqa: F401  (fixtures are used by name)
    ec2, s3, iam, sqs, made, namespace_driver, pytestmark, run_pattern, has_ok, ok_lines, value,
)


def depth(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def read_all(sqs, url, want):
    """Every message of the queue (up to `want`), received once each, with SentTimestamp."""
    got = {}
    for _ in range(3 * want // 10 + 5):
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                MessageSystemAttributeNames=["SentTimestamp"])
        msgs = r.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            assert m["MessageId"] not in got, f"{m['MessageId']} received twice"
            got[m["MessageId"]] = m
        if len(got) >= want:
            break
    return list(got.values())


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def test_pattern_27_queuing_chain(endpoint, ec2, sqs, made):
    out = run_pattern("27-queuing-chain", endpoint, made)
    assert "pattern 27: all observations hold" in out
    in_url, out_url = value(out, "input queue"), value(out, "output queue")
    worker_id, _ = value(out, "worker instance").split()
    mark_id, mark_n = re.fullmatch(r"(\S+) \(n=(\d+), message attribute crash-once\)",
                                   value(out, "marked message")).groups()
    assert has_ok(out, "sent 100 integers in 0..92")
    assert has_ok(out, "99 results; the input queue: 0 visible, 1 in flight (the marked message)")
    assert has_ok(out, f"console: worker: crashed on {mark_id} (n={mark_n}, receive 1): not deleted")
    assert has_ok(out, "input queue empty (0 visible, 0 in flight); output queue holds 100 results")
    assert has_ok(out, "exactly 100 results")
    assert has_ok(out, "each result is F(n) of the integer its input carried (checked all 100)")
    assert has_ok(out, "each of the 100 inputs answered exactly once")
    m = re.search(r"^  ok    the marked message was processed once, on its receive 2, (\d+)s after its first "
                  r"receive \(visibility timeout 20s\)$", out, re.M)
    assert m and int(m.group(1)) >= 19, out

    # nimbus's side: the input queue is empty, nothing in flight; 100 results wait
    vt = sqs.get_queue_attributes(QueueUrl=in_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert vt["VisibilityTimeout"] == "20"
    assert depth(sqs, in_url) == (0, 0)
    assert depth(sqs, out_url) == (100, 0)
    results = read_all(sqs, out_url, 100)
    assert len(results) == 100
    assert depth(sqs, out_url) == (0, 100)
    answered = {}
    for r in results:
        mid, n, f, count, first, recv, worker = r["Body"].split()
        assert mid not in answered, f"input {mid} answered twice"
        answered[mid] = (int(n), int(count), int(first), int(recv))
        assert int(f) == fib(int(n)), r["Body"]
        assert 0 <= int(n) <= 92 and worker == worker_id
    assert len(answered) == 100
    n, count, first, recv = answered[mark_id]
    assert n == int(mark_n) and count == 2 and recv - first >= 19000, answered[mark_id]
    assert all(c == 1 for mid, (_, c, _, _) in answered.items() if mid != mark_id)
    console = ec2.get_console_output(InstanceId=worker_id)["Output"]
    assert f"worker: crashed on {mark_id} (n={mark_n}, receive 1): not deleted" in console
    assert console.count(f"worker: crashed on {mark_id}") == 1


def test_pattern_28_priority_queue(endpoint, ec2, sqs, made):
    out = run_pattern("28-priority-queue", endpoint, made)
    assert "pattern 28: all observations hold" in out
    p_url, n_url, r_url = value(out, "priority queue"), value(out, "normal queue"), value(out, "results queue")
    workers = [line.split()[0] for line in re.findall(r"^worker instance: (.+)$", out, re.M)]
    assert len(workers) == 2
    for w in workers:
        assert has_ok(out, f"console: worker: {w} polls priority priority normal")
    assert has_ok(out, "80 results, every job done once")
    first_p, first_n = map(int, re.search(r"^first 30 results: (\d+) priority, (\d+) normal$", out, re.M).groups())
    assert first_p + first_n == 30 and first_p > 15 and first_n >= 5
    m = re.search(r"^  ok    the priority queue drained first: its last job is result #(\d+) of 80, "
                  r"(\d+) normal jobs were still left$", out, re.M)
    assert m and int(m.group(1)) < 80 and int(m.group(2)) > 0, out
    assert has_ok(out, "no starvation: ")

    # nimbus's side: both job queues are empty; the 80 results, in the order nimbus
    # received them (SentTimestamp), show the same: priority first, normal not starved
    assert depth(sqs, p_url) == (0, 0)
    assert depth(sqs, n_url) == (0, 0)
    assert depth(sqs, r_url) == (80, 0)
    results = read_all(sqs, r_url, 80)
    rows = []
    for r in results:
        job, done_ns, worker, _ = r["Body"].split()
        assert worker in workers
        rows.append((int(r["Attributes"]["SentTimestamp"]), int(done_ns), job))
    rows.sort()
    jobs = [job for _, _, job in rows]
    assert sorted(jobs) == sorted([f"P-{i:02d}" for i in range(1, 41)] + [f"N-{i:02d}" for i in range(1, 41)])
    kinds = "".join(j[0] for j in jobs)
    last_p = kinds.rindex("P") + 1
    normal_before = kinds[:last_p].count("N")
    assert kinds[-1] == "N" and last_p < 80, kinds
    assert 10 <= normal_before <= 30, kinds   # 2:1 -> about 20 while the 40 priority jobs drain
    assert kinds[:30].count("P") > 15 and kinds[:30].count("N") >= 5, kinds
