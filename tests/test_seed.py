"""Seeding a NIC-specific variant's object tree from its CPU's build
(kernels/seed.py) on small trees; the real builds and the byte identity
with a clean build are in tests/e2e (test_kernel_61, test_linux24)."""
import os
import subprocess
from pathlib import Path

import pytest

from kernels import buildsystem, matrix, seed


def test_only_nic_specific_variants_have_a_base():
    line = matrix.load_line("linux-6.1")
    assert seed.base_variant(line, line.variant("pentium")) is None
    assert seed.base_variant(line, line.variant("p4-3c590")).name == "p4"
    assert seed.base_variant(line, line.variant("pentium_smp-epic100")).name == "pentium_smp"


def test_seeding_can_be_turned_off(monkeypatch):
    monkeypatch.delenv(seed.SEED_ENV, raising=False)
    assert seed.seeding_enabled()
    monkeypatch.setenv(seed.SEED_ENV, "0")
    assert not seed.seeding_enabled()


def _tree(root: Path) -> None:
    (root / "kernel").mkdir(parents=True)
    (root / "kernel" / "sched.c").write_text("source\n")
    (root / "Makefile").write_text("all:\n")


def test_copy_links_shared_sources_and_copies_build_products(tmp_path):
    """2.4: sources stay hard links to the pristine src/; objects are
    copies with their mtimes (a compiler truncating its output in the new
    tree must not reach the base's object)."""
    src, base, dest = tmp_path / "src", tmp_path / "base", tmp_path / "dest"
    _tree(src)
    subprocess.run(["cp", "-al", str(src), str(base)], check=True)
    (base / "kernel" / "sched.o").write_bytes(b"\x7fELF object")
    os.utime(base / "kernel" / "sched.o", ns=(1_000_000_000, 1_000_000_000))
    (base / "include").mkdir()
    (base / "include" / "asm").symlink_to("asm-i386")

    copied = seed._copy_tree(base, dest, shared=src)

    assert copied == 1
    assert os.path.samestat((dest / "kernel" / "sched.c").stat(), (src / "kernel" / "sched.c").stat())
    obj = dest / "kernel" / "sched.o"
    assert not os.path.samestat(obj.stat(), (base / "kernel" / "sched.o").stat())
    assert obj.read_bytes() == b"\x7fELF object" and obj.stat().st_mtime_ns == 1_000_000_000
    assert os.readlink(dest / "include" / "asm") == "asm-i386"
    obj.write_bytes(b"rebuilt")
    assert (base / "kernel" / "sched.o").read_bytes() == b"\x7fELF object"


def test_copy_without_shared_sources_copies_everything(tmp_path):
    base, dest = tmp_path / "base", tmp_path / "dest"
    _tree(base)
    assert seed._copy_tree(base, dest, shared=None) == 2
    assert (dest / "kernel" / "sched.c").read_text() == "source\n"


@pytest.fixture
def line_in(tmp_path, monkeypatch):
    monkeypatch.setenv("LTSP_MOSIX_BUILD_DIR", str(tmp_path / "build"))
    return matrix.load_line("linux-6.1")


def test_a_base_without_a_finished_build_seeds_nothing(line_in, tmp_path, capsys):
    variant = line_in.variant("pentium-3c590")
    assert seed.seed_object_dir(line_in, variant, tmp_path / "no" / "build.json", "kernel:x") is None
    assert "clean build: pentium has no finished build" in capsys.readouterr().out


def test_a_base_whose_build_was_cut_short_or_reconfigured_is_refused(line_in, tmp_path):
    from kernels import kconfig, tree
    base = line_in.variant("pentium")
    objdir = buildsystem.for_line(line_in).object_dir(line_in, base)
    objdir.mkdir(parents=True)
    (objdir / "vmlinux").write_bytes(b"elf")
    record = tmp_path / "build.json"
    record.write_text("{}")
    final = kconfig.final_config_path(line_in, base)
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_text("CONFIG_X86_32=y\n")
    (objdir / ".config").write_text("CONFIG_X86_32=y\n")
    assert seed.base_ready(line_in, base, record) is None
    (objdir / tree.RUNNING_MARKER).write_text("123\n")
    assert seed.base_ready(line_in, base, record) == "pentium's build did not finish"
    (objdir / tree.RUNNING_MARKER).unlink()
    (objdir / ".config").write_text("CONFIG_X86_32=y\nCONFIG_E100=y\n")
    assert seed.base_ready(line_in, base, record) == "pentium's tree does not hold its audited config"


def test_a_variant_with_a_build_of_its_own_is_not_reseeded(line_in, tmp_path):
    from kernels import tree
    variant = line_in.variant("pentium-3c590")
    objdir = buildsystem.for_line(line_in).object_dir(line_in, variant)
    objdir.mkdir(parents=True)
    (objdir / "vmlinux").write_bytes(b"its own")
    assert seed.seed_object_dir(line_in, variant, tmp_path / "build.json", "kernel:x") is None
    assert (objdir / "vmlinux").read_bytes() == b"its own"


def test_a_seeded_6_1_tree_holds_the_base_objects_and_the_variants_config(line_in, tmp_path, capsys):
    from kernels import kconfig, tree
    base, variant = line_in.variant("pentium"), line_in.variant("pentium-3c590")
    base_obj = buildsystem.for_line(line_in).object_dir(line_in, base)
    (base_obj / "drivers" / "net").mkdir(parents=True)
    (base_obj / "vmlinux").write_bytes(b"base vmlinux")
    (base_obj / "drivers" / "net" / "e100.o").write_bytes(b"object")
    for v, text in ((base, "CONFIG_E100=y\n"), (variant, "CONFIG_VORTEX=y\n")):
        final = kconfig.final_config_path(line_in, v)
        final.parent.mkdir(parents=True, exist_ok=True)
        final.write_text(text)
    (base_obj / ".config").write_text("CONFIG_E100=y\n")
    record = tmp_path / "build.json"
    record.write_text("{}")
    mine = buildsystem.for_line(line_in).object_dir(line_in, variant)
    mine.mkdir(parents=True)
    (mine / ".config").write_text("CONFIG_VORTEX=y\n")       # what its config step left

    assert seed.seed_object_dir(line_in, variant, record, "kernel:pentium-3c590") == "pentium"

    assert (mine / "drivers" / "net" / "e100.o").read_bytes() == b"object"
    assert (mine / ".config").read_text() == "CONFIG_VORTEX=y\n"
    assert seed.seeded_from(mine) == "pentium" and seed.seeded_from(base_obj) is None
    assert not mine.with_name(mine.name + ".seeding").exists()
    assert "object tree seeded from pentium's build" in capsys.readouterr().out
    # Built once, it rebuilds in its own tree from then on.
    assert seed.seed_object_dir(line_in, variant, record, "kernel:pentium-3c590") is None


def test_a_24_tree_has_its_own_headers(tmp_path):
    """2.4's make dep touches headers: a touch in one variant's tree must
    not reach src/ or another variant's tree through a shared inode."""
    from kernels.tree import unshare_headers
    src, tree = tmp_path / "src", tmp_path / "tree"
    _tree(src)
    (src / "include").mkdir()
    (src / "include" / "sched.h").write_text("header\n")
    os.utime(src / "include" / "sched.h", ns=(5_000_000_000, 5_000_000_000))
    subprocess.run(["cp", "-al", str(src), str(tree)], check=True)
    assert unshare_headers(tree) == 1
    header = tree / "include" / "sched.h"
    assert not os.path.samestat(header.stat(), (src / "include" / "sched.h").stat())
    assert header.stat().st_mtime_ns == 5_000_000_000 and header.read_text() == "header\n"
    assert os.path.samestat((tree / "kernel" / "sched.c").stat(), (src / "kernel" / "sched.c").stat())
    os.utime(header)                                          # make dep's touch
    assert (src / "include" / "sched.h").stat().st_mtime_ns == 5_000_000_000


def test_a_24_copy_names_its_own_tree_in_flags_and_dependencies(tmp_path):
    """2.4 records the tree's absolute path (-I<tree>/include) in each
    object's flags file; the copy must name the new tree, with the mtimes
    kept, or make rebuilds every object."""
    base, dest = tmp_path / "base", tmp_path / "dest"
    _tree(base)
    flags = base / "kernel" / ".sched.o.flags"
    flags.write_text(f"ifeq (-D__KERNEL__ -I{base}/include -O2,$(CFLAGS))\n")
    (base / "kernel" / ".depend").write_text(f"sched.o: sched.c {base}/include/linux/sched.h\n")
    for path in (flags, base / "kernel" / ".depend"):
        os.utime(path, ns=(7_000_000_000, 7_000_000_000))
    seed._copy_tree(base, dest, shared=None, rewrite=(str(base).encode(), str(dest).encode()))
    assert (dest / "kernel" / ".sched.o.flags").read_text() == f"ifeq (-D__KERNEL__ -I{dest}/include -O2,$(CFLAGS))\n"
    assert (dest / "kernel" / ".depend").read_text() == f"sched.o: sched.c {dest}/include/linux/sched.h\n"
    assert (dest / "kernel" / ".sched.o.flags").stat().st_mtime_ns == 7_000_000_000
    assert (dest / "kernel" / "sched.c").read_text() == "source\n"


def test_a_24_copy_dates_its_headers_before_its_oldest_object(tmp_path):
    root = tmp_path / "tree"
    _tree(root)
    (root / "include" / "asm-i386").mkdir(parents=True)
    for name, mtime in (("include/asm-i386/bugs.h", 30), ("include/asm-i386/processor.h", 40),
                        ("kernel/sched.o", 20), ("init/main.o", 25)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
        os.utime(root / name, ns=(mtime * 10**9, mtime * 10**9))
    assert buildsystem.settle_headers(root) == 2
    for header in ("bugs.h", "processor.h"):
        assert (root / "include" / "asm-i386" / header).stat().st_mtime_ns == 19 * 10**9
    assert (root / "kernel" / "sched.o").stat().st_mtime_ns == 20 * 10**9
