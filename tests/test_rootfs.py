"""Everything generated from the cluster file: map files, lts.conf, the
dnsmasq configuration (checked by dnsmasq itself), the TFTP tree, the node
rc script (checked by sh, dash and shellcheck, and run under dash against
recording stand-ins for the Mosix tools) and the overlay."""
import os
import shutil
import subprocess
import textwrap
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from common.errors import UserError
from kernels import matrix
from rootfs import dnsmasq, ltsconf, maps, overlay
from rootfs import pxetree as pxe
from rootfs import rcscript, server, tftp
from rootfs.cluster import load_cluster

DASH = shutil.which("dash") or "/bin/dash"


@pytest.fixture(scope="module")
def shipped():
    return load_cluster()


def make_cluster(tmp_path, server_ip: str, node_ips: list[str], line: str = "openmosix-2"):
    """A cluster on 192.168.67.0/24 with one pentium/e1000 node per address."""
    nodes = "".join(textwrap.dedent(f"""
        [[nodes]]
        name = "n{i}"
        mac = "52:54:00:00:00:{i:02x}"
        ip = "{ip}"
        cpu = "pentium"
        nic = "e1000"
        memory_mb = 64
        """) for i, ip in enumerate(node_ips, start=1))
    path = tmp_path / f"cluster-{len(list(tmp_path.glob('cluster-*')))}.toml"
    path.write_text(f'[cluster]\nname = "t"\nline = "{line}"\nsubnet = "192.168.67.0/24"\n'
                    f'server = "{server_ip}"\nnfs_root = "/opt/ltsp/i386"\n{nodes}')
    return load_cluster(path)


def map_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# -- map files ------------------------------------------------------------------

def test_shipped_map_merges_consecutive_addresses(shipped):
    assert map_lines(maps.render_map(shipped)) == [
        "1 192.168.67.1 1",        # the server, lowest address
        "2 192.168.67.10 3",       # node01..03
        "5 192.168.67.20 2",       # node04..05
    ]


def test_map_ranges_and_ids_consecutive_with_server_last(tmp_path):
    cluster = make_cluster(tmp_path, "192.168.67.254",
                           ["192.168.67.20", "192.168.67.11", "192.168.67.10", "192.168.67.12"])
    assert map_lines(maps.render_map(cluster)) == [
        "1 192.168.67.10 3", "4 192.168.67.20 1", "5 192.168.67.254 1"]
    assert maps.node_ids(cluster) == {"server": 5, "n3": 1, "n2": 2, "n4": 3, "n1": 4}


def test_server_next_to_nodes_joins_their_range(tmp_path):
    cluster = make_cluster(tmp_path, "192.168.67.9", ["192.168.67.10", "192.168.67.11"])
    assert map_lines(maps.render_map(cluster)) == ["1 192.168.67.9 3"]


def test_map_ids_count_every_member_once(shipped, tmp_path):
    for cluster in (shipped, make_cluster(tmp_path, "192.168.67.100",
                                          [f"192.168.67.{i}" for i in (2, 3, 5, 8, 9, 10, 99, 101)])):
        entries = maps.map_entries(cluster)
        expected_id = 1
        for entry in entries:
            assert entry.node_id == expected_id
            expected_id += entry.count
        assert expected_id - 1 == len(cluster.nodes) + 1
        covered = [IPv4Address(int(e.first_ip) + k) for e in entries for k in range(e.count)]
        assert covered == maps.member_addresses(cluster)


def test_map_file_name_per_line():
    assert maps.map_path_on_node("openmosix-2") == "/etc/hpc.map"
    assert maps.map_path_on_node("mosix-1.7.0") == "/etc/mosix.map"
    assert maps.map_path_on_node("linux-6.1") == "/etc/hpc.map"     # documented choice


def test_write_map_is_atomic_and_complete(shipped, tmp_path):
    path = maps.write_map(shipped, tmp_path / "etc" / "hpc.map")
    assert path.read_text() == maps.render_map(shipped)
    assert [p.name for p in path.parent.iterdir()] == ["hpc.map"]


# -- lts.conf -------------------------------------------------------------------

def parse_lts_conf(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None and _, f"setting outside a section: {raw!r}"
        current[key.strip()] = value.strip()
    return sections


def test_lts_conf_default_and_node_sections(shipped):
    sections = parse_lts_conf(ltsconf.render_lts_conf(shipped))
    assert list(sections) == ["Default", "node01", "node02", "node03", "node04", "node05"]
    default = sections["Default"]
    assert default["SERVER"] == default["SYSLOG_HOST"] == "192.168.67.1"
    assert default["XSERVER"] == "auto"
    assert default["RCFILE_01"] == rcscript.RC_NAME == "mosix"
    assert (default["SCREEN_01"], default["RUNLEVEL"]) == ("startx", "5")
    assert sections["node05"] == {"RUNLEVEL": "3", "SCREEN_01": "shell", "RCFILE_01": "mosix"}
    assert sections["node01"]["RCFILE_01"] == "mosix"


def test_lts_conf_comments_name_each_nodes_kernel(shipped):
    text = ltsconf.render_lts_conf(shipped)
    assert "# node02: 192.168.67.11, MAC 00:e0:29:67:00:11, Mosix node 3\n" in text
    assert "kernel openmosix-2 pentium_smp-epic100\n[node02]\n" in text
    assert "2048 MB; kernel openmosix-2 p4\n[node04]\n" in text


# -- dnsmasq --------------------------------------------------------------------

def test_dnsmasq_conf_passes_dnsmasq_test(shipped, tmp_path):
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    assert os.access(binary, os.X_OK), "dnsmasq missing: install the Debian package dnsmasq-base"
    conf = dnsmasq.write_dnsmasq_conf(shipped, tmp_path / "dnsmasq.conf", interface="eth1",
                                      tftp_root=tmp_path / "tftp")
    result = subprocess.run([binary, "--test", f"--conf-file={conf}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax check OK" in result.stdout + result.stderr


def test_dnsmasq_test_would_catch_a_broken_file(tmp_path):
    """The check above is real: dnsmasq refuses an option it does not know."""
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    bad = tmp_path / "bad.conf"
    bad.write_text("port=0\ndhcp-range=192.168.67.0,statik,255.255.255.0\n")
    assert subprocess.run([binary, "--test", f"--conf-file={bad}"], capture_output=True).returncode != 0


def test_dnsmasq_conf_content(shipped, tmp_path):
    lines = dnsmasq.render_dnsmasq_conf(shipped, interface="eth1", tftp_root=Path("/srv/tftp")).splitlines()
    for expected in ("port=0", "interface=eth1", "bind-interfaces",
                     "dhcp-range=192.168.67.0,static,255.255.255.0,infinite",
                     "dhcp-option=option:root-path,192.168.67.1:/opt/ltsp/i386",
                     "dhcp-boot=pxelinux.0", "enable-tftp", "tftp-root=/srv/tftp"):
        assert expected in lines
    hosts = [line for line in lines if line.startswith("dhcp-host=")]
    assert hosts == [f"dhcp-host={n.mac},{n.ip},{n.name},infinite" for n in shipped.nodes_by_ip()]


@pytest.mark.parametrize("interface", ["", "eth 1", "a/b", "x" * 16])
def test_dnsmasq_refuses_a_bad_interface(shipped, interface):
    with pytest.raises(UserError, match="interface"):
        dnsmasq.render_dnsmasq_conf(shipped, interface=interface, tftp_root=Path("/srv/tftp"))


# -- TFTP tree ------------------------------------------------------------------

@pytest.fixture
def images(tmp_path, shipped):
    """Placeholder kernels (one per variant, contents naming it) and initrd."""
    folder = tmp_path / "images"
    folder.mkdir()
    initrd = folder / "initrd.img"
    initrd.write_bytes(b"initrd")
    result = {}
    for variant in shipped.variant_names():
        kernel = folder / f"bzImage-{variant}"
        kernel.write_bytes(f"kernel {variant}".encode())
        result[variant] = tftp.BootImages(kernel, initrd)
    return result


def test_tftp_tree_one_config_per_node_with_its_kernel(shipped, images, tmp_path):
    root = tftp.write_tftp_tree(shipped, tmp_path / "tftp", images)
    configs = sorted(p.name for p in (root / "pxelinux.cfg").iterdir())
    assert configs == sorted(["default"] + ["01-" + n.mac.replace(":", "-") for n in shipped.nodes])
    for node in shipped.nodes:
        text = (root / "pxelinux.cfg" / ("01-" + node.mac.replace(":", "-"))).read_text()
        assert f"KERNEL lts/openmosix-2/vmlinuz-{node.variant_name}\n" in text
        assert (f"APPEND initrd=lts/openmosix-2/initrd-{node.variant_name}.img ip=dhcp root=/dev/nfs "
                f"nfsroot=192.168.67.1:/opt/ltsp/i386,v3,udp\n") in text
        kernel = root / f"lts/openmosix-2/vmlinuz-{node.variant_name}"
        assert kernel.read_bytes() == f"kernel {node.variant_name}".encode()
    # a PC the cluster file does not know boots nothing
    assert (root / "pxelinux.cfg" / "default").read_text() == pxe.refusal_config()


def test_nfsroot_options_per_kernel(shipped):
    assert tftp.node_append(shipped).endswith("nfsroot=192.168.67.1:/opt/ltsp/i386,v3,udp")
    assert tftp.node_append(shipped.for_line("mosix-1.7.0")).endswith(",v3,udp")
    modern = shipped.for_line("linux-6.1")
    assert tftp.node_append(modern, "console=ttyS0,115200") == (
        "ip=dhcp root=/dev/nfs nfsroot=192.168.67.1:/opt/ltsp/i386,vers=3,tcp console=ttyS0,115200")


def test_tftp_tree_refuses_a_missing_kernel(shipped, images, tmp_path):
    del images["p4"]
    with pytest.raises(UserError, match=r"no kernel for variant p4 \(for node04\)"):
        tftp.write_tftp_tree(shipped, tmp_path / "tftp", images)


def test_built_images_point_into_the_build_dir(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("LTSP_MOSIX_BUILD_DIR", str(tmp_path / "build"))
    found = tftp.built_images(shipped, tmp_path / "initrd.ext2")
    assert sorted(found) == shipped.variant_names()
    assert found["p4"].kernel == tmp_path / "build/openmosix-2/variants/p4/out/bzImage"


# -- rc script: static checks ----------------------------------------------------

@pytest.fixture(params=["openmosix-2", "mosix-1.7.0"])
def rc_script(request, shipped, tmp_path):
    return rcscript.write_rc_script(shipped.for_line(request.param), tmp_path / "mosix")


def test_rc_script_is_executable_and_names_its_map(rc_script):
    assert os.access(rc_script, os.X_OK)
    text = rc_script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "@" not in "".join(line for line in text.splitlines() if not line.startswith("#"))
    wanted = "/etc/mosix.map" if "mosix-1.7.0" in text else "/etc/hpc.map"
    assert f'MOSIX_MAP="${{MOSIX_MAP:-{wanted}}}"' in text


@pytest.mark.parametrize("checker", [["sh", "-n"], ["dash", "-n"], ["shellcheck", "-s", "sh"]])
def test_rc_script_passes(checker, rc_script):
    assert shutil.which(checker[0]), f"{checker[0]} missing"
    result = subprocess.run(checker + [str(rc_script)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_leftover_placeholder_is_an_error(shipped, tmp_path):
    template = tmp_path / "t.sh.in"
    template.write_text("#!/bin/sh\necho @MAP@ @NOPE@\n")
    with pytest.raises(UserError, match="@NOPE@"):
        rcscript.render_rc_script(shipped, template)


# -- rc script: run under dash against recording stand-ins -----------------------

STAND_IN = """#!/bin/sh
# stand-in: record how we were called, then behave as the test asks
echo "{name} $*" >> "$FAKE_LOG"
{body}
exit 0
"""
STAND_IN_BODIES = {
    "setpe": 'case "$1" in -r) [ -n "$FAKE_SETPE_MAP" ] && echo "$FAKE_SETPE_MAP" ;; '
             '*) exit "${FAKE_SETPE_EXIT:-0}" ;; esac',
    "mosctl": '[ "$1" = expel ] && exit "${FAKE_EXPEL_EXIT:-0}"',
    # mount/umount keep a mounts table, so the script sees what it did
    "mount": 'for last in "$@"; do :; done; echo "cluster $last mfs rw,dfsa=1 0 0" >> "$PROC_MOUNTS"',
    "umount": 'grep -v " $1 mfs " "$PROC_MOUNTS" > "$PROC_MOUNTS.new"; mv "$PROC_MOUNTS.new" "$PROC_MOUNTS"',
    "mosrun": "",
    "logger": "",
}


@pytest.fixture
def node(tmp_path, shipped):
    """The real rc script, a map, an MFS dir and a mounts table in tmp_path,
    and stand-ins for the Mosix tools first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STAND_IN_BODIES.items():
        tool = bin_dir / name
        tool.write_text(STAND_IN.format(name=name, body=body))
        tool.chmod(0o755)
    script = rcscript.write_rc_script(shipped, tmp_path / "root/etc/rc.d/mosix")
    map_file = maps.write_map(shipped, tmp_path / "root/etc/hpc.map")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(tmp_path / "calls.log"),
           "MOSIX_MAP": str(map_file), "MFS_DIR": str(tmp_path / "root/mfs"),
           "PROC_MOUNTS": str(tmp_path / "mounts")}
    (tmp_path / "mounts").write_text("proc /proc proc rw 0 0\n")

    class Node:
        mfs = Path(env["MFS_DIR"])
        map = map_file

        def run(self, *args, **extra_env):
            (tmp_path / "calls.log").unlink(missing_ok=True)
            result = subprocess.run([DASH, str(script), *args], env={**env, **extra_env},
                                    capture_output=True, text=True, timeout=10)
            log = (tmp_path / "calls.log").read_text() if (tmp_path / "calls.log").exists() else ""
            result.calls = [line for line in log.splitlines() if not line.startswith("logger ")]
            result.logged = [line for line in log.splitlines() if line.startswith("logger ")]
            return result

        def mounts(self):
            return (tmp_path / "mounts").read_text()
    return Node()


def test_start_loads_the_map_then_mounts_mfs(node):
    result = node.run("start")
    assert result.returncode == 0, result.stderr
    assert result.calls == [f"setpe -W -f {node.map}",
                            f"mount -t mfs -o dfsa=1 cluster {node.mfs}"]
    assert node.mfs.is_dir()
    assert any("joining the cluster" in line for line in result.logged)    # syslog via logger


def test_stop_expels_guests_before_leaving_then_unmounts(node):
    assert node.run("start").returncode == 0
    result = node.run("stop")
    assert result.returncode == 0, result.stderr
    assert result.calls == ["mosctl block", "mosctl expel", f"umount {node.mfs}", "setpe -off"]
    assert result.calls.index("mosctl expel") < result.calls.index("setpe -off")
    assert " mfs " not in node.mounts()


def test_no_argument_means_start_as_ltsp_rc_local_runs_it(node):
    result = node.run()
    assert result.returncode == 0
    assert result.calls[0] == f"setpe -W -f {node.map}"


def test_failing_setpe_fails_start_and_mounts_nothing(node):
    result = node.run("start", FAKE_SETPE_EXIT="3")
    assert result.returncode == 1
    assert f"setpe -W -f {node.map} failed (exit 3)" in result.stderr
    assert result.calls == [f"setpe -W -f {node.map}"]
    assert " mfs " not in node.mounts()


def test_failing_expel_still_leaves_the_cluster_but_reports_it(node):
    node.run("start")
    result = node.run("stop", FAKE_EXPEL_EXIT="1")
    assert result.returncode == 1
    assert "mosctl expel failed" in result.stderr
    assert result.calls[-1] == "setpe -off"


def test_start_twice_mounts_once(node):
    node.run("start")
    result = node.run("start")
    assert result.returncode == 0
    assert [c for c in result.calls if c.startswith("mount")] == []
    assert node.mounts().count(" mfs ") == 1


def test_status(node):
    assert node.run("status").returncode == 3
    node.run("start")
    assert node.run("status", FAKE_SETPE_MAP="1 192.168.67.1 6").returncode == 0
    node.run("stop")
    assert node.run("status").returncode == 3


def test_missing_map_is_exit_6(node, tmp_path):
    result = node.run("start", MOSIX_MAP=str(tmp_path / "absent.map"))
    assert result.returncode == 6 and "absent.map missing" in result.stderr
    assert result.calls == []


def test_missing_tool_is_exit_5(node, tmp_path):
    result = node.run("start", PATH="/nonexistent")
    assert result.returncode == 5 and "setpe not found" in result.stderr


def test_unknown_action_prints_usage(node):
    result = node.run("reload")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "{start|stop|restart|status}" in result.stderr
    assert result.calls == []


# -- server snippets and overlay --------------------------------------------------

def test_server_snippets():
    assert server.fstab_line() == "cluster /mfs mfs dfsa=1 0 0"
    assert server.inittab_line() == "l5:5:wait:/bin/mosrun -h /etc/init.d/rc 5"


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    return {str(p.relative_to(root)): (p.stat().st_mode & 0o777, p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def test_overlay_layout(shipped, tmp_path):
    out = overlay.write_overlay(shipped, tmp_path / "overlay")
    files = tree(out)
    node_root = "opt/ltsp/i386"
    assert {name for name, (_, data) in files.items() if data is not None} == {
        f"{node_root}/etc/hpc.map", f"{node_root}/etc/lts.conf", f"{node_root}/etc/rc.d/mosix",
        "server/README", "server/etc/fstab.mfs", "server/etc/inittab.mosrun",
        "server/etc/hpc.map", "server/etc/init.d/mosix"}
    assert files[f"{node_root}/mfs"][1] is None                       # the mount point, a dir
    assert files[f"{node_root}/etc/rc.d/mosix"][0] == 0o755
    assert files[f"{node_root}/etc/lts.conf"][0] == 0o644
    assert files["server/etc/hpc.map"] == files[f"{node_root}/etc/hpc.map"]
    assert files["server/etc/fstab.mfs"][1] == b"cluster /mfs mfs dfsa=1 0 0\n"
    assert files["server/etc/inittab.mosrun"][1] == b"l5:5:wait:/bin/mosrun -h /etc/init.d/rc 5\n"
    assert b"Mosix node 1" in files["server/README"][1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp dirs left"


def test_overlay_is_deterministic_and_replaces_stale_files(shipped, tmp_path):
    first = tree(overlay.write_overlay(shipped, tmp_path / "a"))
    (tmp_path / "a" / "stale").write_text("from an older cluster")
    second = tree(overlay.write_overlay(shipped, tmp_path / "a"))
    assert first == second == tree(overlay.write_overlay(shipped, tmp_path / "b"))


def test_overlay_for_mosix_line_carries_mosix_map(shipped, tmp_path):
    out = overlay.write_overlay(shipped.for_line("mosix-1.7.0"), tmp_path / "o")
    etc = out / "opt/ltsp/i386/etc"
    assert (etc / "mosix.map").is_file() and not (etc / "hpc.map").exists()
    assert 'MOSIX_MAP:-/etc/mosix.map}' in (etc / "rc.d/mosix").read_text()


def test_build_for_release_returns_the_node_root(tmp_path):
    root = overlay.build_for_release(matrix.load_line("linux-6.1"), tmp_path / "overlay")
    assert root == tmp_path / "overlay/opt/ltsp/i386"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "etc/hpc.map", "etc/lts.conf", "etc/rc.d/mosix"]
    assert "(line linux-6.1)" in (root / "etc/lts.conf").read_text()


def test_the_ltsp23_test_server_runs_ltsps_own_dnsmasq_conf_which_dnsmasq_accepts(tmp_path):
    """tests/ltsp_site.py's dnsmasq.conf: LTSP's template, adapted, checked."""
    from tests.ltsp_site import dnsmasq_conf
    conf = tmp_path / "ltsp-dnsmasq.conf"
    conf.write_text(dnsmasq_conf(tmp_path / "srv/tftp"))
    result = subprocess.run([shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--test", f"--conf-file={conf}"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "syntax check OK" in result.stdout + result.stderr, result.stderr
    text = conf.read_text()
    assert "dhcp-boot=tag:ipxe,ltsp/ltsp.ipxe" in text and f"tftp-root={tmp_path}/srv/tftp" in text
