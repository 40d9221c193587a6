"""The x86-64 migration line as data, the cluster's [migration] table and
its CPU-feature check, the node root built from Debian packages (for real:
dpkg and ldd on this machine), and how a count's history is judged.  The
migration itself, on two netbooted nodes, is tests/e2e/test_migrate.py."""
import json
import os
import subprocess

import pytest

from common.errors import UserError
from initrd import nfsroot_debian
from kernels import matrix
from lab.counts import judge_history
from lab.migrate import run_migration
from lab.site.nfs import render_ganesha_conf
from rootfs.cluster import load_cluster
from tests.conftest import ROOT

MIGRATE = ROOT / "configs" / "cluster-migrate.toml"


def test_the_x86_64_line_has_its_own_cpu_variants():
    line = matrix.load_line("linux-6.1-x86_64")
    assert [v.name for v in line.variants()] == ["haswell", "k8"]
    assert {v.cpu for v in matrix.load_line("linux-6.1").variants()} == {"athlon", "p4", "pentium", "pentium_smp"}
    assert "avx2" in matrix.cpu_spec("haswell").features and "avx" not in matrix.cpu_spec("k8").features


def test_a_line_naming_an_unknown_nic_profile_is_refused(isolated):
    toml = isolated / "configs" / "lines" / "linux-6.1-x86_64.toml"
    toml.write_text(toml.read_text().replace('nic_profiles = ["all"]', 'nic_profiles = ["all", "3c905"]'))
    with pytest.raises(UserError, match=r"linux-6.1-x86_64.toml: field 'nic_profiles' names unknown profiles \['3c905'\]"):
        matrix.load_line("linux-6.1-x86_64")


def test_the_shipped_migration_cluster_loads():
    cluster = load_cluster(MIGRATE)
    assert (cluster.migration.source, cluster.migration.target, cluster.migration.mismatched) == \
        ("node01", "node02", "node03")
    assert [n.variant_name for n in cluster.nodes] == ["haswell", "haswell", "k8"]


def migration_file(tmp_path, target_cpu="haswell", mismatched_cpu="k8", extra=""):
    text = MIGRATE.read_text()
    text = text.replace('name = "node02"\nmac = "52:54:00:68:00:11"\nip = "192.168.68.11"\ncpu = "haswell"',
                        f'name = "node02"\nmac = "52:54:00:68:00:11"\nip = "192.168.68.11"\ncpu = "{target_cpu}"')
    text = text.replace('ip = "192.168.68.12"\ncpu = "k8"', f'ip = "192.168.68.12"\ncpu = "{mismatched_cpu}"')
    path = tmp_path / "cluster.toml"
    path.write_text(text.replace("[migration]\n", f"[migration]\n{extra}"))
    return path


def test_a_mixed_cpu_migration_is_refused_before_boot_naming_nodes_and_features(tmp_path):
    with pytest.raises(UserError) as error:
        load_cluster(migration_file(tmp_path, target_cpu="k8"))
    message = str(error.value)
    assert "mixed CPUs: node node02 (k8) lacks sse4_1, sse4_2, xsave, avx, avx2 that node node01 (haswell) " \
           "offers" in message and "CRIU refuses to restore it on node02" in message


def test_a_mismatched_node_must_really_lack_a_feature(tmp_path):
    with pytest.raises(UserError, match=r"\[migration\] field 'mismatched': node node03 \(haswell\) offers "
                                        r"every feature of node01"):
        load_cluster(migration_file(tmp_path, mismatched_cpu="haswell"))


def test_migration_table_errors_name_the_field(tmp_path):
    with pytest.raises(UserError, match=r"\[migration\] field 'target': no node 'node09'"):
        load_cluster(_with(tmp_path, 'target = "node02"', 'target = "node09"'))
    with pytest.raises(UserError, match=r"\[migration\] field 'speed': unknown field"):
        load_cluster(migration_file(tmp_path, extra="speed = 3\n"))


def _with(tmp_path, old, new):
    path = tmp_path / "edited.toml"
    path.write_text(MIGRATE.read_text().replace(old, new))
    return path


def test_the_node_root_export_is_read_only_beside_a_writable_one(tmp_path):
    conf = render_ganesha_conf(tmp_path / "root", state_dir=tmp_path, pseudo="/opt/ltsp/amd64", access="RO",
                               extra_exports=[(tmp_path / "cluster", "/opt/ltsp/amd64-cluster", "RW")])
    root, cluster = conf.split("EXPORT {")[1:3]
    assert "Access_Type = RO;" in root and 'Pseudo = "/opt/ltsp/amd64";' in root and "Export_Id = 1;" in root
    assert "Access_Type = RW;" in cluster and 'Pseudo = "/opt/ltsp/amd64-cluster";' in cluster
    assert "Export_Id = 2;" in cluster


def test_the_node_root_is_debians_packages_with_their_libraries(tmp_path):
    root = nfsroot_debian.make_debian_root(tmp_path / "root")
    for path in ("usr/sbin/criu", "usr/bin/perl", "usr/bin/dash", "usr/bin/mount", nfsroot_debian.NODE_INIT.lstrip("/"),
                 nfsroot_debian.COUNT_SCRIPT.lstrip("/"), "usr/lib/x86_64-linux-gnu/libprotobuf-c.so.1",
                 "usr/lib/x86_64-linux-gnu/perl-base/POSIX.pm", "lib64/ld-linux-x86-64.so.2"):
        assert (root.path / path).exists(), path
    assert os.readlink(root.path / "bin") == "usr/bin"
    manifest = json.loads((root.path / nfsroot_debian.MANIFEST).read_text())
    installed = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "criu"], capture_output=True,
                               text=True).stdout
    assert manifest["packages"]["criu"] == installed and "libc6" in manifest["packages"]
    assert manifest["digest"] == root.digest
    assert {(root.path / "usr/bin/perl").stat().st_mtime} == {1670792400}
    # the root's own perl runs the seed's loop (chroot: only the root's files)
    run = subprocess.run(["/usr/sbin/chroot", str(root.path), "/usr/bin/perl", nfsroot_debian.COUNT_SCRIPT, "/tmp", "10", "5"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin", "LC_ALL": "C"})
    assert run.returncode == 0, run.stderr
    rows = [line.split()[:2] for line in (root.path / "tmp" / "history").read_text().splitlines()]
    assert rows == [["start", "0"], ["count", "5"], ["count", "10"], ["done", "10"]]
    for name in ("history", "progress"):
        (root.path / "tmp" / name).unlink()
    again = nfsroot_debian.make_debian_root(tmp_path / "root")
    assert again.digest == root.digest, "the same installed packages give the same root"


def test_a_missing_package_names_it(tmp_path):
    spec = nfsroot_debian.RootSpec(("criu", "no-such-package-here"), 1670792400)
    with pytest.raises(Exception, match="no-such-package-here is not installed.*apt-get install no-such-package-here"):
        nfsroot_debian.make_debian_root(tmp_path / "root", spec)
    assert not (tmp_path / "root").exists()


def history(*rows):
    return [list(r) for r in rows]


GOOD = history(("start", 0, "node01", 3000), ("count", 200000, "node01", 3000), ("count", 400000, "node01", 3000),
               ("count", 600000, "node02", 3000), ("count", 800000, "node02", 3000), ("done", 800000, "node02", 3000))


def test_a_continued_computation_is_judged_continued():
    assert judge_history(GOOD, "node01", "node02", 800000) == (400000, [])


@pytest.mark.parametrize("rows, wanted", [
    (GOOD[:3] + history(("start", 0, "node02", 3000), ("done", 800000, "node02", 3000)), "started more than once"),
    (GOOD[:3] + history(("count", 600000, "node02", 3001), ("done", 800000, "node02", 3001)), "more than one process"),
    (GOOD[:5], "did not finish on node02"),
    (GOOD[:3] + history(("count", 200000, "node02", 3000), ("done", 800000, "node02", 3000)), "went backwards"),
    (history(*[tuple(r[:2]) + ("node01", 3000) for r in GOOD]), "did not run on node01 and then only on node02"),
])
def test_a_restart_another_process_or_no_finish_is_not_a_migration(rows, wanted):
    _, problems = judge_history(rows, "node01", "node02", 800000)
    assert any(wanted in p for p in problems), problems


def test_the_node_init_and_the_count_script_are_clean():
    init = nfsroot_debian.NODE_FILES / "ltsp-mosix-node"
    for checker in (["sh", "-n"], ["dash", "-n"], ["shellcheck", "-s", "sh"]):
        run = subprocess.run([*checker, str(init)], capture_output=True, text=True)
        assert run.returncode == 0, (checker, run.stdout, run.stderr)
    run = subprocess.run(["perl", "-c", str(nfsroot_debian.NODE_FILES / "count.pl")], capture_output=True, text=True)
    assert run.returncode == 0 and "syntax OK" in run.stderr


def test_a_migration_without_its_kernels_is_refused_before_anything_starts(tmp_path):
    cluster = load_cluster(MIGRATE)
    kernels = {"haswell": tmp_path / "no-bzImage", "k8": tmp_path / "no-bzImage"}
    with pytest.raises(UserError, match=r"kernel image .*no-bzImage for variant (haswell|k8) does not exist"):
        run_migration(cluster, kernels, tmp_path / "state")
    with pytest.raises(UserError, match=r"no kernel given for variant\(s\) k8"):
        run_migration(cluster, {"haswell": tmp_path / "no-bzImage"}, tmp_path / "state")
    assert not (tmp_path / "state").exists()
