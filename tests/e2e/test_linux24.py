"""The linux-2.4.22 line for real: the vanilla tree through the local source
override, the project's gcc-12 series, every variant built and PXE-booted,
reproducibility, and the hostile-loader proof of the initrd relocation.

The vanilla tree is not in the project (third-party code): point
LTSP_MOSIX_TEST_TREE_2_4_22 at an unpacked linux-2.4.22 (e.g. the public
repository hooao/linux-2.4.22 at commit aa17aeb, archived into a scratch
folder); /work/scratch/linux-2.4.22 is used when present."""
import os
import shutil
from pathlib import Path

import pytest

from kernels import tree
from qemu.boot import APPEND_EXT2, boot_once
from qemu.hostile import make_hostile_bzimage
from tests.conftest import ROOT, run_doit

pytestmark = pytest.mark.e2e
CANDIDATES = [os.environ.get("LTSP_MOSIX_TEST_TREE_2_4_22", ""), "/work/scratch/linux-2.4.22",
              str(ROOT.parent / "scratch" / "linux-2.4.22")]
TREE = next((Path(c) for c in CANDIDATES if c and (Path(c) / "arch/i386/config.in").is_file()), None)
if TREE is None:
    pytest.skip("no vanilla linux-2.4.22 tree: set LTSP_MOSIX_TEST_TREE_2_4_22 to an unpacked one",
                allow_module_level=True)

LINE_DIR = ROOT / "build" / "linux-2.4.22"
RELOCATION_PATCH = "0014-initrd-relocate-below-lowmem.patch"


def env24(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTSP_MOSIX_")}
    env["LTSP_MOSIX_OVERRIDE_LINUX_2_4_22"] = str(TREE)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def line24_built():
    """Every variant of the line built through doit (~35 s each)."""
    result = run_doit("line=linux-2.4.22", "kernel", env=env24())
    return result


def test_every_variant_builds_with_gcc12(line24_built):
    import json
    for record_path in sorted(LINE_DIR.glob("variants/*/out/build.json")):
        record = json.loads(record_path.read_text())
        assert record["source"] == tree.UNVERIFIED and record["kernel_release"] == "2.4.22"
        assert [p["name"] for p in record["patches"]][-1] == "0100-reproducible-compile-h.patch"
        print(f"{record['variant']:<22} {record['build_seconds']:6.1f}s  bzImage {record['bzImage']['size']} bytes")
    assert len(list(LINE_DIR.glob("variants/*/out/bzImage"))) == 12


def test_every_variant_boots_over_pxe(line24_built):
    result = run_doit("line=linux-2.4.22", "boot-test", env=env24(), timeout=3000)
    print(result.stdout[-4000:])
    assert "0 fail, 0 hang" in result.stdout


def test_check_passes_on_the_vanilla_line(line24_built):
    assert "12 variants share" in run_doit("line=linux-2.4.22", "check", env=env24()).stdout


def test_two_clean_builds_give_the_same_bzimage(line24_built, tmp_path):
    run_doit("line=linux-2.4.22", "kernel:pentium_smp", env=env24(LTSP_MOSIX_BUILD_DIR=str(tmp_path / "b"),
                                                                  LTSP_MOSIX_CCACHE="0"))
    first = LINE_DIR / "variants" / "pentium_smp" / "out" / "bzImage"
    second = tmp_path / "b" / "linux-2.4.22" / "variants" / "pentium_smp" / "out" / "bzImage"
    assert tree.sha256_file(first) == tree.sha256_file(second)
    print(f"pentium_smp twice: {tree.sha256_file(first)}")


def hostile_boot(kernel: Path, initrd: Path, work: Path):
    hostile = make_hostile_bzimage(kernel, work / "bzImage-hostile")
    return boot_once(hostile, initrd, cpu="pentium", nic="e1000", mem_mb=3584, path="direct",
                     append=APPEND_EXT2, log_path=work / "hostile.log", variant="pentium", line="linux-2.4.22",
                     require_interface=False)


def test_hostile_loader_unpatched_fails_patched_relocates(line24_built, tmp_path):
    initrd = LINE_DIR / "initrd" / "initrd.ext2"
    run_doit("line=linux-2.4.22", "initrd", env=env24())
    patched = hostile_boot(LINE_DIR / "variants" / "pentium" / "out" / "bzImage", initrd, tmp_path)
    print(f"patched: {patched.verdict} {patched.seconds}s initrd moved to {patched.initrd_moved_to}")
    assert patched.verdict == "pass", patched.console_line
    assert patched.initrd_moved_to is not None and patched.initrd_moved_to < 0x38000000

    patches = tmp_path / "patches"
    shutil.copytree(ROOT / "patches", patches)
    series = patches / "linux-2.4.22" / "series"
    series.write_text(series.read_text().replace(RELOCATION_PATCH + "\n", ""))
    (patches / "linux-2.4.22" / RELOCATION_PATCH).unlink()
    build_dir = tmp_path / "unpatched"
    run_doit("line=linux-2.4.22", "kernel:pentium",
             env=env24(LTSP_MOSIX_PATCHES=str(patches), LTSP_MOSIX_BUILD_DIR=str(build_dir)))
    unpatched = hostile_boot(build_dir / "linux-2.4.22" / "variants" / "pentium" / "out" / "bzImage",
                             initrd, tmp_path / "u")
    print(f"unpatched: {unpatched.verdict} {unpatched.kind}: {unpatched.console_line}")
    assert unpatched.verdict == "fail" and unpatched.kind == "initrd-beyond-memory"


def test_nfs_root_boot_of_a_24_node(line24_built, tmp_path):
    """2.4 nodes mount their root over NFSv3/UDP from the project's ganesha."""
    from qemu.cluster_test import boot_nfsroot
    result = boot_nfsroot(LINE_DIR / "variants" / "pentium" / "out" / "bzImage", tmp_path,
                          kernel_version="2.4.22")
    print(f"2.4.22 NFS-root boot: {result.verdict} in {result.seconds}s; root {result.report.root}")
    assert result.verdict == "pass" and not result.problems, (result.problems, result.log_path)


def test_mosix_option_on_the_vanilla_24_tree_fails_the_audit(line24_built, tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    toml = configs / "lines" / "linux-2.4.22.toml"
    toml.write_text(toml.read_text().replace('invariants = "none.config"', 'invariants = "mosix.config"'))
    result = run_doit("line=linux-2.4.22", "config:athlon", check=False,
                      env=env24(LTSP_MOSIX_CONFIGS=str(configs), LTSP_MOSIX_BUILD_DIR=str(tmp_path / "b")))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CONFIG_MOSIX: requested y, final absent" in output, output[-2000:]
