#!/usr/bin/env python3
"""Regenerate crates/nimbus/startup-functions.txt: the functions a start of
`nimbus serve --ephemeral` runs up to its first answers, which the release link
places together at the front of the code (crates/nimbus/build.rs).

    cargo build --release -p nimbus
    tools/startup-order.py [BINARY] [OUT]
        (defaults: target/release/nimbus, crates/nimbus/startup-functions.txt)

Why: the kernel maps a binary's code in blocks of 64 KiB or more (fault-around, and
whole page-cache folios on recent kernels). The 2,000 functions a start runs are
1.5 MiB of code, but spread over 13 MiB of .text they made the kernel map 7-8 MiB,
most of the idle RSS of an empty nimbus. Placed together, 2 MiB are mapped.

How: the binary runs under valgrind's lackey (every executed instruction), answers
/_nimbus/health a few times, is killed once idle, and every function containing an
executed address is listed. Names are written without their hashes (v0 mangling,
`Cs<hash>_` and back-references `B<n>_` as `*`), so the list stays valid when a
toolchain update or a version bump changes the hashes; build.rs turns it into
linker-script patterns. A stale entry matches nothing and costs nothing; code new
to the start stays where it was (a little more RSS, never an error). Regenerate
after larger changes to what a start runs.

Needs valgrind and nm (binutils), and a release binary built with this repository's
.cargo/config.toml (v0 symbol names). Starts the server as `nimbus bench --workload
startup` does (`serve --ephemeral` on a free loopback port): as root, run it in a
network namespace of its own (`ip netns exec NAME tools/startup-order.py`).
"""
import os, re, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request
from bisect import bisect_right

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTH_CHECKS = 5
SETTLE = 2.0  # seconds after the health checks (the bench reads RSS after 0.3 s; valgrind is ~50x slower)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executed_addresses(binary):
    """Runs one start under lackey; returns (set of executed addresses, load base)."""
    port = free_port()
    read_fd, write_fd = os.pipe()
    tmp = tempfile.mkdtemp(prefix="startup-order-")
    env = dict(os.environ, TMPDIR=tmp)  # the --ephemeral directory lands in tmp
    proc = subprocess.Popen(
        ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-fd={write_fd}",
         binary, "serve", "--ephemeral", "--port", str(port)],
        pass_fds=(write_fd,), env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    addrs = set()

    def collect():
        # Lackey writes "I  0040a7f0,3" per executed instruction (data accesses start with a space).
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as f:
            for line in f:
                if line[:1] == b"I":
                    addrs.add(int(line[3:].split(b",", 1)[0], 16))

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        answered = 0
        deadline = time.time() + 300
        while answered < HEALTH_CHECKS:
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("startup-order: the server did not answer /_nimbus/health under valgrind")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_nimbus/health", timeout=5) as r:
                    answered += r.status == 200
            except OSError:
                time.sleep(0.2)
        time.sleep(SETTLE)
        base = load_base(proc.pid, binary)
    finally:
        # SIGKILL: what a shutdown runs is not part of a start.
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        subprocess.run(["rm", "-rf", tmp], check=False)
    return addrs, base


def load_base(pid, binary):
    real = os.path.realpath(binary)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
                return int(fields[0].split("-")[0], 16)
    sys.exit(f"startup-order: {real} is not mapped in valgrind's process")


def functions(binary):
    """(start, size, name) of every function symbol, sorted by address."""
    out = subprocess.run(["nm", "--defined-only", "-S", binary], capture_output=True, text=True,
                         check=True).stdout
    syms = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            syms.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    syms.sort()
    return syms


def pattern(name):
    """A symbol name without the parts that change with the compiler, versions and flags."""
    name = re.sub(r"\.llvm\.\d+$", "", name)
    if name.startswith("_R"):  # v0: crate disambiguators and back-references vary
        name = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name)
        name = re.sub(r"B[0-9A-Za-z]*_", "B*_", name)
        return name + "*"
    legacy = re.match(r"^(_ZN.*17h)[0-9a-f]{16}E$", name)
    if legacy:  # one name for every instance of a generic function: too broad, but valid
        return legacy.group(1) + "*"
    return name  # C (mimalloc) and other unmangled names


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/nimbus")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "crates/nimbus/startup-functions.txt")
    syms = functions(binary)
    if sum(1 for s in syms if s[2].startswith("_R")) < len(syms) // 2:
        sys.exit("startup-order: the binary's symbols are not v0-mangled (built without .cargo/config.toml?)")
    addrs, base = executed_addresses(binary)
    starts = [s[0] for s in syms]
    hit = set()
    for a in addrs:
        a -= base
        i = bisect_right(starts, a) - 1
        # Every function covering the address, aliases of merged functions included
        # (the linker keeps the section of only one of them).
        while i >= 0 and starts[i] > a - (1 << 16):
            s, size, name = syms[i]
            if s <= a < s + max(size, 1):
                hit.add(name)
            i -= 1
    if len(hit) < 500:
        sys.exit(f"startup-order: only {len(hit)} functions ran; is {binary} the binary valgrind ran?")
    patterns = sorted({pattern(n) for n in hit})
    with open(out, "w") as f:
        f.write("# Functions a start of `nimbus serve --ephemeral` runs, placed together by the\n"
                "# release link (crates/nimbus/build.rs). Generated by tools/startup-order.py.\n")
        f.writelines(p + "\n" for p in patterns)
    print(f"{len(patterns)} functions ({len(hit)} symbols) -> {out}")


if __name__ == "__main__":
    main()
