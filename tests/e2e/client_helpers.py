"""Shared pieces of the suites that run real third-party clients (test_client_*.py)
against a live nimbus: a skip when the client is not installed, and a server per
auth mode, so that the same client session runs against `--auth open` (the session
server) and `--auth enforce` (root credentials test/test: every signature verified).
"""
import filecmp
import hashlib
import os
import shutil

import pytest

from conftest import Server

__all__ = ["need", "auth_server", "client_env", "tree_digest", "make_tree", "same_tree"]


def need(command, package):
    """The client's path; the test skips (saying why) when it is not installed."""
    path = shutil.which(command)
    if not path:
        pytest.skip(f"{command} is not installed (Debian package {package}; scripts/test installs it)")
    return path


def client_env(home, **extra):
    """The environment a client runs in: no AWS_* variables of the caller's (a CA
    bundle or profile meant for AWS itself; rclone refuses AWS_CA_BUNDLE on an
    http endpoint), HOME in the test's folder so no user config is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "RESTIC_"))}
    env["HOME"] = str(home)
    env.update(extra)
    return env


@pytest.fixture(scope="module", params=["open", "enforce"])
def auth_server(request):
    """The session server (`--auth open`), or a server of this module's own that
    verifies every signature against the root credentials test/test."""
    if request.param == "open":
        yield request.getfixturevalue("server")
        return
    s = Server("--auth", "enforce", "--root-access-key-id", "test", "--root-secret-access-key", "test")
    s.start()
    yield s
    s.stop()


def make_tree(root, seed=b"tree"):
    """A small folder tree with nested folders, an empty file, a name with spaces and
    a unicode name, and bodies of a few sizes; returns {relative path: bytes}."""
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "dir one/b.txt": b"bravo " * 100,
        "dir one/deeper/c.bin": hashlib.sha256(seed).digest() * 4096,  # 128 KiB
        "caf\u00e9/d\u00e9j\u00e0 vu.txt": "d\u00e9j\u00e0 vu\n".encode(),
        "big/random.bin": os.urandom(300 * 1024),
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return files


def tree_digest(root):
    """{relative path: sha256} of every file under root."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def same_tree(a, b):
    """True when both trees hold the same files with the same bytes."""
    return tree_digest(a) == tree_digest(b) and not filecmp.dircmp(a, b).diff_files
