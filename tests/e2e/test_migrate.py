"""The x86-64 line for real: its kernels built and PXE-boot-tested, and a
process migrating between two netbooted nodes (`doit migrate-test`,
lab/migrate.py): node01 counts with the seed's perl loop, CRIU dumps it
into the shared folder, node02 restores it and finishes the count; node03's
CPU lacks node01's features and CRIU there refuses the restore."""
import json
import signal

import pytest

from lab.site.netns import NAME_PREFIX, NETNS_DIR
from tests.conftest import (ROOT, interrupt_doit, project_env, qemu_processes, run_doit, session_build_dir,
                            settled)
from tests.e2e.test_nfsroot import leftover_processes

pytestmark = pytest.mark.e2e

LINE = "linux-6.1-x86_64"
LINE_DIR = session_build_dir() / LINE       # set before collection (tests/conftest.py)


@pytest.fixture(scope="module")
def kernels_64(kernels):
    return kernels(LINE, "k8", "haswell")


def test_both_61_lines_build_from_one_unpacked_source_tree(kernels, kernels_64):
    """Debian's linux-source-6.1 is unpacked once per build folder: the two
    6.1 lines' trees are hard links of one prepared tree."""
    kernels("linux-6.1", "pentium")
    for name in ("Makefile", "kernel/fork.c", "arch/x86/boot/header.S"):
        i386, x86_64 = (session_build_dir() / line / "src" / name for line in ("linux-6.1", LINE))
        assert i386.stat().st_ino == x86_64.stat().st_ino, name
    assert len(list((session_build_dir() / "trees").iterdir())) == 1


def test_the_x86_64_variants_boot_over_pxe(kernels_64):
    result = run_doit("-n", "2", f"line={LINE}", "boot-test", env=project_env())
    print(result.stdout[-3000:])
    for variant in kernels_64:
        boots = json.loads((LINE_DIR / "boot" / variant / "results.json").read_text())["boots"]
        assert boots and all(b["verdict"] == "pass" for b in boots), boots
        assert any(b.get("firmware") == "rom" for b in boots)


def test_kcidb_of_the_x86_64_line_validates_with_its_architecture(kernels_64):
    """doit kcidb after the line's boot test: KernelCI's schema accepts the
    document, and builds and boots say x86_64 (the line's and CPUs' data)."""
    import kcidb_io
    run_doit("-n", "2", f"line={LINE}", "boot-test", env=project_env())      # no-op after the boot test
    run_doit(f"line={LINE}", "kcidb", env=project_env())
    document = json.loads((LINE_DIR / "kcidb.json").read_text())
    kcidb_io.schema.V5_3.validate(document)
    assert sorted(b["config_name"] for b in document["builds"]) == ["haswell", "k8"]
    assert {b["architecture"] for b in document["builds"]} == {"x86_64"}
    assert document["tests"] and all(t["environment"]["comment"].startswith("QEMU x86_64 TCG (qemu-system-x86_64)")
                                     for t in document["tests"])


def test_a_computation_migrates_and_a_mismatched_cpu_is_refused(kernels_64, namespaces_allowed):
    result = run_doit(f"line={LINE}", "migrate-test", env=project_env(), check=False)
    print(result.stdout[-5000:], result.stderr[-3000:])
    record = json.loads((LINE_DIR / "migrate-test" / "results.json").read_text())
    assert result.returncode == 0 and record["problems"] == [], record["problems"]
    history = record["history"]
    assert history[0][:3] == ["start", 0, "node01"] and history[-1][:3] == ["done", 12_000_000, "node02"]
    assert len({row[3] for row in history}) == 1                       # one process throughout
    on_source = [row[1] for row in history if row[2] == "node01"]
    on_target = [row[1] for row in history if row[2] == "node02"]
    assert on_source and on_target and min(on_target) > max(on_source) == record["dump_count"] > 0
    assert record["image_bytes"] > 0 and record["image_files"] > 0
    assert "Looks good" in record["criu_check"]
    assert set(record["steps"]) >= {"boot", "check", "start", "dump", "transfer", "restore", "finish"}
    print("steps:", record["steps"], "images:", record["image_files"], record["image_bytes"])
    print("criu check on node01:\n" + record["criu_check"])
    refusal = record["mismatch_refusal"]
    print("node03 (k8, qemu64) restoring node01's dump:\n" + refusal)
    assert "restored" not in refusal and "Restoring FAILED" in refusal
    assert "xsave area present, but host cpu doesn't support it" in refusal     # the feature, named by CRIU
    assert qemu_processes("ltsp-mosix-migrate68-") == []
    assert record["namespace_removed"] is True


def test_a_mixed_cpu_cluster_is_refused_before_boot(tmp_path):
    text = (ROOT / "configs" / "cluster-migrate.toml").read_text()
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(text.replace('target = "node02"', 'target = "node03"').replace(
        'mismatched = "node03"\n', ""))
    result = run_doit(f"line={LINE}", "migrate-test", f"cluster={mixed}", env=project_env(), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "mixed CPUs: node node03 (k8) lacks sse4_1, sse4_2, xsave, avx, avx2 that node node01 (haswell)" in output
    assert "namespace" not in output            # refused before any namespace was made


def test_ctrl_c_during_the_migration_tears_everything_down(kernels_64, namespaces_allowed):
    """SIGINT once the nodes are up: exit 130 with one line, no QEMU, no
    daemon and no namespace left."""
    ready = LINE_DIR / "migrate-test" / "export" / "cluster" / "nodes" / "node01" / "ready"
    ready.unlink(missing_ok=True)
    before = {p.name for p in NETNS_DIR.glob(f"{NAME_PREFIX}*")}
    outcome, code, output = interrupt_doit(f"line={LINE}", "migrate-test", env=project_env(),
                                           sig=signal.SIGINT, kill_when=lambda t: ready.exists())
    print(f"migrate-test {outcome}: exit {code}; {output.strip().splitlines()[-1]}")
    assert code == 130 and "interrupted by SIGINT" in output and "Traceback" not in output, output[-3000:]
    assert settled(lambda: qemu_processes("ltsp-mosix-migrate68-")) == []
    assert {p.name for p in NETNS_DIR.glob(f"{NAME_PREFIX}*")} <= before
    assert leftover_processes(LINE_DIR / "migrate-test") == []


def test_the_x86_64_line_is_released_like_the_others(kernels_64, gpg_keys, tmp_path):
    env = project_env(LTSP_MOSIX_RELEASE_DIR=str(tmp_path / "releases"))
    result = run_doit(f"line={LINE}", "release", f"key={gpg_keys.good}", f"keyring={gpg_keys.home}", env=env)
    assert "published" in result.stdout, result.stdout[-2000:]
    names = sorted(p.name for p in (tmp_path / "releases" / LINE).iterdir())
    assert [n for n in names if "_kernel_" in n] == [n for n in names if n.startswith("ltsp_linux61_x86_64_kernel_")]
    assert len([n for n in names if "_kernel_" in n]) == 2, names
    assert not [n for n in names if "_core_" in n]          # no Mosix overlay on this line
    manifest = json.loads((tmp_path / "releases" / LINE / "manifest.json").read_text())
    debs = sorted(p["package"] for p in manifest["apt"]["suites"]["ltsp23"]["packages"])
    assert debs == ["ltsp-mosix-linux-6.1-x86-64-haswell", "ltsp-mosix-linux-6.1-x86-64-k8"], debs
    verified = run_doit("verify-release", f"dir={tmp_path / 'releases' / LINE}", f"key={gpg_keys.good}",
                        f"keys={gpg_keys.keys_dir}", env=env)
    assert "files verified" in verified.stdout and "apt repository: 2 suites, 4 packages verified" in verified.stdout
