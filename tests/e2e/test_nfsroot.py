"""A real Linux 6.1 node booting with its root on NFS from the project's own
nfs-ganesha + rpcbind (lab/site/nfs.py), under QEMU on user networking.

Server and QEMU run in a network namespace the test creates (so QEMU's
10.0.2.2 is that namespace's loopback and nothing else); the node's init
(initrd/nfsinit.c, on the exported root) writes /booted-<host>, which the
test then reads on the server side.  Direct (-kernel) and PXE (pxelinux
with nfsroot= in its APPEND) boots (their times: bench/)."""
import json
import os
from pathlib import Path

import pytest

from initrd.nfsroot import booted_file, parse_booted
from lab.nfsboot import boot_nfsroot
from lab.site.netns import namespace_exists

pytestmark = pytest.mark.e2e

# What we start: a child of ours by one of these names must not outlive a test.
OUR_PROGRAMS = {"ganesha.nfsd", "rpcbind", "qemu-system-i38", "dnsmasq", "nsenter", "sleep", "ip"}


def leftover_processes(state_dir: Path) -> list[str]:
    """Processes a run left behind: any whose command line names its state
    dir (grandchildren included), and any child of this process running
    one of our programs, zombies (started but never reaped) included."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = dict(line.split(":\t", 1) for line in
                          (proc / "status").read_text().splitlines() if ":\t" in line)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ours = status.get("PPid", "").strip() == str(os.getpid()) and \
            status.get("Name", "").strip() in OUR_PROGRAMS
        if str(state_dir) in cmdline or ours:
            found.append(f"{proc.name} {status.get('Name', '').strip()} "
                         f"state={status.get('State', '').strip()} {cmdline[:120]}")
    return found


def _release_built(kernel: Path) -> str:
    record = kernel.parent / "build.json"
    return json.loads(record.read_text())["kernel_release"] if record.is_file() else "6.1."


@pytest.mark.parametrize("path", ["direct", "pxe"])
def test_nfs_root_boot(kernel_61, tmp_path, namespaces_allowed, path):
    host = f"nfs-{path}"
    result = boot_nfsroot(kernel_61, tmp_path, path=path, hostname=host, timeout=90)
    print(f"\nNFS-root boot ({path}): {result.verdict} in {result.seconds}s "
          f"(ganesha ready in {result.nfs_ready_seconds}s), log {result.log_path}")
    assert result.verdict == "pass", f"{result.kind}: {result.console_line} (log {result.log_path})"
    assert result.problems == []
    # The root really is the server's export, over NFSv3/TCP.
    device, mountpoint, fstype, options = result.report.root.split()[:4]
    assert (device, mountpoint, fstype) == ("10.0.2.2:/opt/ltsp/i386", "/", "nfs")
    assert "vers=3" in options and "proto=tcp" in options
    # Server side: the file the node wrote, with this kernel's release.
    written = booted_file(tmp_path / "root", host)
    assert written.is_file(), f"{written} missing on the server"
    facts = parse_booted(written.read_text())
    assert facts["host"] == host
    assert facts["release"].startswith(_release_built(kernel_61))
    assert facts["ip"] == result.report.ip == "10.0.2.15"
    if path == "pxe":
        assert result.report.loaded_kernel == "lts/linux-6.1/vmlinuz-nfsroot"
    # Nothing of ours still runs, the namespace is gone.
    assert leftover_processes(tmp_path) == []
    assert result.namespace and not namespace_exists(result.namespace)
