"""Config composition and audit on the real Linux 6.1 tree (Debian's
linux-source-6.1), prepared through `doit prepare`."""
import shutil
import subprocess

import pytest

from common import paths
from common.errors import UserError
from kernels import kconfig, matrix
from kernels.fragments import read_config_values
from tests.conftest import project_env, run_doit, session_build_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def src_61():
    run_doit("line=linux-6.1", "prepare", env=project_env())
    src = session_build_dir() / "linux-6.1" / "src"
    assert (src / "scripts/kconfig/merge_config.sh").is_file()
    return src


@pytest.fixture
def line_61(src_61, isolated):
    """linux-6.1 with configs from the test's copy and variant dirs under
    tmp, reusing the prepared tree read-only (O= builds never write to it)."""
    line_dir = isolated / "build" / "linux-6.1"
    line_dir.mkdir(parents=True)
    (line_dir / "src").symlink_to(src_61)
    shutil.copy(src_61.parent / "prepared.json", line_dir / "prepared.json")
    return lambda: matrix.load_line("linux-6.1")


def non_comment_lines(path):
    return [line for line in path.read_text().splitlines() if line and not line.startswith("# Linux/")
            and not line.startswith("# Automatically")]


def test_composition_equals_merge_config_sh_plus_olddefconfig(line_61, tmp_path):
    line = line_61()
    variant = line.variant("pentium_smp-epic100")
    ours = kconfig.configure(line, variant)

    reference = tmp_path / "reference"
    make = ["make", "-C", str(paths.line_dir(line.name) / "src"), f"O={reference}", "ARCH=i386"]
    subprocess.run(make + ["tinyconfig"], check=True, capture_output=True)
    shutil.copy(reference / ".config", tmp_path / "tiny.config")
    fragments = [str(tmp_path / "tiny.config")] + [str(f) for f in kconfig.fragment_files(line, variant)]
    subprocess.run(["sh", str(paths.line_dir(line.name) / "src/scripts/kconfig/merge_config.sh"),
                    "-m", "-O", str(reference), *fragments], check=True, capture_output=True)
    subprocess.run(make + ["olddefconfig"], check=True, capture_output=True)
    assert non_comment_lines(ours) == non_comment_lines(reference / ".config")


def test_every_requested_option_lands_for_all_cpu_variants(line_61):
    line = line_61()
    for cpu, symbol in (("pentium", "CONFIG_M586TSC"), ("athlon", "CONFIG_MK7"), ("p4", "CONFIG_MPENTIUM4")):
        final = read_config_values(kconfig.configure(line, line.variant(cpu)))
        assert final[symbol] == "y" and final["CONFIG_HIGHMEM4G"] == "y"
        assert final["CONFIG_CHECKPOINT_RESTORE"] == "y"


def test_mosix_option_is_dropped_by_the_61_tree_and_fails_the_audit(line_61, isolated):
    inv = isolated / "configs" / "invariants" / "linux-6.1.config"
    inv.write_text(inv.read_text() + "CONFIG_MOSIX=y\n")
    line = line_61()
    with pytest.raises(UserError, match=r"variant pentium.*\n.*CONFIG_MOSIX: requested y, final absent "
                                        r"\(asked at .*invariants/linux-6.1.config:\d+\)"):
        kconfig.configure(line, line.variant("pentium"))


def test_option_whose_dependency_is_missing_is_reported_changed(line_61, isolated):
    """CONFIG_UNIX_DIAG needs CONFIG_UNIX: turning UNIX off in a CPU fragment
    makes olddefconfig drop UNIX_DIAG; the audit names it and its fragment."""
    cpu = isolated / "configs" / "cpu" / "athlon.config"
    cpu.write_text(cpu.read_text() + "# CONFIG_UNIX is not set\n")
    base = isolated / "configs" / "base" / "linux-6.1.config"
    base.write_text(base.read_text().replace("CONFIG_UNIX=y\n", ""))
    line = line_61()
    with pytest.raises(UserError, match=r"CONFIG_UNIX_DIAG: requested y, final absent"):
        kconfig.configure(line, line.variant("athlon"))
