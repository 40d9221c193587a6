"""The NFS server's configuration and tool checks (lab/site/nfs.py), the NFS
node root and its init (initrd/nfsroot.py, initrd/nfsinit.c), and what the
NFS-root runners refuse before starting anything (lab/cluster.py).
No daemon is started here: tests/e2e/test_nfsroot.py and test_cluster.py
do the real thing."""
import os
import re
import stat
import struct
from pathlib import Path

import pytest

from common.errors import InfraError, UserError
from initrd import nfsroot
from initrd.build import BOOT_MARKER
from initrd.cpio import newc_archive
from lab import cluster as cluster_run
from lab import nfsboot, nodes
from lab.site import netns, nfs
from lab.site.nfs import NfsServer, find_tools, render_ganesha_conf
from rootfs.cluster import load_cluster


def _block(text: str, name: str) -> str:
    """The body of `name { ... }` (nested blocks included)."""
    start = re.search(rf"^{name} \{{\n", text, re.M)
    assert start, f"no {name} block in:\n{text}"
    depth, index = 1, start.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        index += 1
    return text[start.end():index - 1]


def _settings(body: str) -> dict[str, str]:
    """key = value; lines, comments stripped, keys lower-cased (ganesha's
    parser ignores case)."""
    settings = {}
    for line in body.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line and line.endswith(";"):
            key, value = line[:-1].split("=", 1)
            settings[key.strip().lower()] = value.strip()
    return settings


@pytest.fixture
def conf(tmp_path):
    return render_ganesha_conf(tmp_path / "root", state_dir=tmp_path / "state",
                               pseudo="/opt/ltsp/i386")


def test_export_is_rw_nfsv3_over_tcp_and_udp_without_root_squash(conf, tmp_path):
    export = _settings(_block(conf, "EXPORT"))
    assert export["export_id"] == "1"
    assert export["path"] == f'"{tmp_path / "root"}"'
    assert export["pseudo"] == '"/opt/ltsp/i386"'
    assert export["access_type"] == "RW"
    assert export["squash"] == "No_Root_Squash"
    assert export["sectype"] == "sys"
    assert export["protocols"] == "3"
    assert [t.strip() for t in export["transports"].split(",")] == ["TCP", "UDP"]
    assert export["privilegedport"] == "false"
    assert _settings(_block(_block(conf, "EXPORT"), "    FSAL"))["name"] == "VFS"


def test_core_params_serve_v3_and_mount_by_pseudo_path(conf, tmp_path):
    core = _settings(_block(conf, "NFS_CORE_PARAM"))
    assert core["protocols"] == "3"
    assert core["nfs_port"] == "2049"
    assert core["mount_path_pseudo"] == "true"
    # NFSv4 state stays in the state dir, not the host's /var/lib/nfs.
    assert _settings(_block(conf, "NFSV4"))["recoveryroot"] == f'"{tmp_path / "state" / "recovery"}"'


def test_pseudo_defaults_to_the_real_path(tmp_path):
    export = _settings(_block(render_ganesha_conf(tmp_path, state_dir=tmp_path), "EXPORT"))
    assert export["pseudo"] == export["path"] == f'"{tmp_path}"'


@pytest.mark.parametrize("bad", ['/a"b', "relative/root", "/a;b", "/a\nb", "/a{b"])
def test_paths_that_would_break_the_config_are_refused(tmp_path, bad):
    with pytest.raises(UserError, match="absolute path"):
        render_ganesha_conf(bad, state_dir=tmp_path)
    with pytest.raises(UserError, match="absolute path"):
        render_ganesha_conf(tmp_path, state_dir=tmp_path, pseudo=bad)


def test_export_id_range(tmp_path):
    with pytest.raises(UserError, match="Export_Id"):
        render_ganesha_conf(tmp_path, state_dir=tmp_path, export_id=0)


# ---- missing tools name their Debian package -------------------------------------

def _fake_bin(directory: Path, *names: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text("#!/bin/sh\nexit 1\n")
        tool.chmod(0o755)
    return directory


@pytest.fixture
def no_sbin_fallback(monkeypatch):
    """require_tool also looks in /usr/sbin and /sbin (not on a normal
    user's PATH); a test that empties PATH must not find the real tools there."""
    monkeypatch.setattr(netns, "require_tool", _which_only)
    monkeypatch.setattr(nfs, "require_tool", _which_only)


def _which_only(binary, package):
    import shutil
    found = shutil.which(binary)
    if found is None:
        raise InfraError(f"{binary} not found: install the Debian package `{package}`")
    return found


def test_missing_ganesha_names_the_package(tmp_path, monkeypatch, no_sbin_fallback):
    monkeypatch.setenv("PATH", str(_fake_bin(tmp_path / "bin", "rpcbind", "rpcinfo")))
    with pytest.raises(InfraError) as error:
        find_tools()
    message = str(error.value)
    assert "ganesha.nfsd not found" in message and "`nfs-ganesha`" in message
    assert "nfs-ganesha nfs-ganesha-vfs rpcbind" in message


def test_missing_ganesha_on_the_real_path_lookup(tmp_path, monkeypatch):
    """The same through require_tool's own /usr/sbin, /sbin fallback:
    ganesha.nfsd lives in /usr/bin, so an empty PATH hides it."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InfraError, match=r"ganesha\.nfsd not found.*`nfs-ganesha`"):
        find_tools()


def test_missing_rpcbind_names_the_package(tmp_path, monkeypatch, no_sbin_fallback):
    monkeypatch.setenv("PATH", str(_fake_bin(tmp_path / "bin", "ganesha.nfsd")))
    with pytest.raises(InfraError, match=r"rpcbind not found.*`rpcbind`"):
        find_tools()


def test_missing_vfs_backend_names_nfs_ganesha_vfs(tmp_path, monkeypatch, no_sbin_fallback):
    monkeypatch.setenv("PATH", str(_fake_bin(tmp_path / "bin", "ganesha.nfsd", "rpcbind", "rpcinfo")))
    monkeypatch.setattr(nfs, "FSAL_VFS_GLOBS", (str(tmp_path / "nowhere" / "libfsalvfs.so"),))
    with pytest.raises(InfraError, match="`nfs-ganesha-vfs`"):
        find_tools()


def test_server_refuses_before_starting_anything(tmp_path, monkeypatch, no_sbin_fallback):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    server = NfsServer(tmp_path, tmp_path / "state")
    with pytest.raises(InfraError, match="nfs-ganesha"):
        with server:
            pass
    assert not (tmp_path / "state").exists()
    assert server.pids() == []


def test_server_refuses_a_missing_export(tmp_path):
    try:
        find_tools()
    except InfraError as error:
        pytest.skip(str(error))
    with pytest.raises(UserError, match="not a directory"):
        NfsServer(tmp_path / "missing", tmp_path / "state").start()


def test_required_packages_for_setup():
    assert nfs.REQUIRED_PACKAGES == ("nfs-ganesha", "nfs-ganesha-vfs", "rpcbind")


# ---- the node root ----------------------------------------------------------------

@pytest.fixture(scope="module")
def nfsinit(tmp_path_factory):
    return nfsroot.compile_nfsinit(tmp_path_factory.mktemp("nfsinit"))


def test_nfsinit_is_a_static_i386_elf_with_the_marker(nfsinit):
    data = nfsinit.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 1
    assert struct.unpack_from("<H", data, 18)[0] == 3, "EM_386"
    assert BOOT_MARKER.encode() in data
    assert b"/etc/ltsp-mosix/peers" in data and b"/booted-" in data


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of /dev/console needs root")
def test_node_root_layout(tmp_path, nfsinit):
    root = tmp_path / "root"
    (root / "ltsp-mosix").mkdir(parents=True)
    (root / "booted-old").write_text("stale")
    (root / "ltsp-mosix" / "done-10.0.0.9").write_text("stale")
    nfsroot.make_node_root(root, nfsinit, ["192.168.67.10", "192.168.67.11"])
    assert (root / "sbin" / "init").read_bytes() == nfsinit.read_bytes()
    assert os.access(root / "sbin" / "init", os.X_OK)
    console = (root / "dev" / "console").stat()
    assert stat.S_ISCHR(console.st_mode) and (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)
    assert (root / "proc").is_dir() and (root / "sys").is_dir()
    assert (root / "etc/ltsp-mosix/peers").read_text() == "192.168.67.10\n192.168.67.11\n"
    # Empty done files exist before the boot (close-to-open, see nfsinit.c);
    # results of an earlier boot are gone.
    assert sorted(p.name for p in (root / "ltsp-mosix").iterdir()) == [
        "done-192.168.67.10", "done-192.168.67.11"]
    assert nfsroot.done_file(root, "192.168.67.10").read_text() == ""
    assert not (root / "booted-old").exists()
    nfsroot.make_node_root(root, nfsinit)                  # again, no peers
    assert not (root / "etc/ltsp-mosix/peers").exists()


def test_node_root_refuses_duplicate_peers(tmp_path, nfsinit):
    with pytest.raises(UserError, match="duplicates"):
        nfsroot.make_node_root(tmp_path, nfsinit, ["10.0.0.1", "10.0.0.1"])


def test_nfsroot_initrd_has_no_init():
    """An initramfs with /init would run it and never mount root=/dev/nfs."""
    names = [entry.name for entry in nfsroot.nfsroot_initrd_entries()]
    assert names == ["dev", "dev/console"]
    assert b"init" not in newc_archive(nfsroot.nfsroot_initrd_entries()).replace(b"TRAILER!!!", b"")


def test_parse_the_files_a_node_writes():
    assert nfsroot.parse_booted("host node01\nrelease 6.1.192\nip 192.168.67.10\n") == {
        "host": "node01", "release": "6.1.192", "ip": "192.168.67.10"}
    assert nfsroot.parse_done("ping 192.168.67.11 ok\nping 192.168.67.12 failed\ndone\n") == (
        {"192.168.67.11": True, "192.168.67.12": False}, True)
    assert nfsroot.parse_done("ping 192.168.67.11 ok\n") == ({"192.168.67.11": True}, False)


# ---- what the node says, and what the runners refuse ---------------------------------

CONSOLE = """\
\x1b[2JLoading lts/linux-6.1/vmlinuz-athlon... ok\r
Loading lts/linux-6.1/initrd-athlon.img...ok\r
VFS: Mounted root (nfs filesystem) on device 0:9.\r
ltsp-mosix: kernel 6.1.192 #1 Sun Dec 11 21:00:00 UTC 2022\r
ltsp-mosix: host node02\r
ltsp-mosix: root 192.168.67.1:/opt/ltsp/i386 / nfs rw,vers=3,proto=tcp\r
ltsp-mosix: ip 192.168.67.11 dev eth0\r
ltsp-mosix: wrote /booted-node02\r
ltsp-mosix: ping 192.168.67.10 ok (try 3)\r
ltsp-mosix: ping 192.168.67.12 FAILED (120 tries)\r
ltsp-mosix: peers done\r
LTSP-MOSIX-BOOT-OK\r
"""


def test_parse_init_report():
    report = nodes.parse_init_report(CONSOLE)
    assert report.kernel_release == "6.1.192"
    assert report.host == "node02" and report.ip == "192.168.67.11" and report.device == "eth0"
    assert report.root.startswith("192.168.67.1:/opt/ltsp/i386 / nfs ")
    assert report.pings == {"192.168.67.10": True, "192.168.67.12": False}
    assert report.peers == "done"
    assert report.loaded_kernel == "lts/linux-6.1/vmlinuz-athlon"


def test_nfsroot_append():
    assert nfsboot.nfsroot_append("10.0.2.2", "/opt/ltsp/i386") == (
        "console=ttyS0,115200 panic=1 rw init=/sbin/init ip=dhcp root=/dev/nfs "
        "nfsroot=10.0.2.2:/opt/ltsp/i386,vers=3,tcp")


def test_cluster_test_refuses_nodes_qemu_cannot_boot(tmp_path):
    """configs/cluster.toml has 3c590 and epic100 nodes: no QEMU card, so
    no network before the root; refused before any namespace exists."""
    cluster = load_cluster().for_line("linux-6.1")
    with pytest.raises(UserError, match=r"QEMU emulates no card for node01 \(3c590\)"):
        cluster_run.run_cluster_test(cluster, {}, tmp_path)
    assert not (tmp_path / "root").exists()


def test_cluster_test_wants_a_kernel_per_variant(tmp_path):
    cluster = load_cluster().for_line("linux-6.1")
    with pytest.raises(UserError, match=r"no kernel given for variant\(s\) p4.*doit line=linux-6.1"):
        cluster_run.run_cluster_test(cluster, {}, tmp_path, nodes=["node04"])
    with pytest.raises(UserError, match="no node"):
        cluster_run.run_cluster_test(cluster, {}, tmp_path, nodes=["nosuchnode"])


def test_cluster_test_refuses_the_24_line(tmp_path):
    cluster = load_cluster()                    # openmosix-2: ext2 initrds
    with pytest.raises(UserError, match="initramfs"):
        cluster_run.run_cluster_test(cluster, {}, tmp_path, nodes=["node04"])


def test_namespace_commands_need_a_running_namespace():
    with pytest.raises(UserError, match="not running"):
        netns.NetNamespace().argv(["true"])
    assert netns.NetNamespace().name.startswith("ltspm-")


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a b"])
def test_interface_names_are_checked(name):
    with pytest.raises(UserError, match="interface name"):
        netns._check_ifname(name)


def test_boot_nfsroot_checks_its_inputs_first(tmp_path):
    with pytest.raises(UserError, match="boot path"):
        nfsboot.boot_nfsroot(tmp_path / "bzImage", tmp_path, path="floppy")
    with pytest.raises(UserError, match="host name"):
        nfsboot.boot_nfsroot(tmp_path / "bzImage", tmp_path, hostname="a,b")
    with pytest.raises(UserError, match="does not exist"):
        nfsboot.boot_nfsroot(tmp_path / "bzImage", tmp_path)
    assert list(tmp_path.iterdir()) == []
