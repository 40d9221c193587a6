"""A build killed anywhere is made safe before make runs again, and a kernel
never ships with less code than its config asks for.  Small object dirs
here; the kill -9 of real 2.4 and 6.1 builds is tests/e2e/test_kill.py."""
import os
import subprocess
import time

import pytest

from common.errors import KernelFailure
from common.procs import group_alive, own_group_dying_with_parent
from kernels import build, buildsystem, matrix, tree


@pytest.fixture
def objdir(isolated):
    """linux-6.1's pentium object dir, as an interrupted build left it: an
    old complete object, and after the marker a half-written object, a
    complete new one, and an empty object from an even older kill."""
    line = matrix.load_line("linux-6.1")
    variant = line.variant("pentium")
    folder = buildsystem.for_line(line).object_dir(line, variant)
    (folder / "net" / "packet").mkdir(parents=True)
    old = folder / "kernel" / "fork.o"
    old.parent.mkdir()
    old.write_bytes(b"\x7fELF old and complete")
    empty = folder / "fs" / "nfs" / "write.o"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    past = time.time() - 60
    for path in (old, empty):
        os.utime(path, (past, past))
    marker = folder / tree.RUNNING_MARKER
    marker.write_text("")
    os.utime(marker, (past + 30, past + 30))
    (folder / "net" / "packet" / "af_packet.o").write_bytes(b"\x7fELF half")
    (folder / "vmlinux.o").write_bytes(b"\x7fELF new")
    return line, variant, folder


def test_an_interrupted_build_loses_what_it_wrote_and_empty_objects_only(objdir, capsys):
    line, variant, folder = objdir
    assert buildsystem.for_line(line).recovered_object_dir(line, variant, "kernel:pentium") == folder
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert left == ["kernel/fork.o"]
    assert "removed 2 files it wrote and 1 empty objects" in capsys.readouterr().out


def test_a_finished_build_is_left_alone(objdir):
    line, variant, folder = objdir
    (folder / tree.RUNNING_MARKER).unlink()
    before = sorted(p for p in folder.rglob("*") if p.is_file())
    buildsystem.for_line(line).recovered_object_dir(line, variant, "kernel:pentium")
    assert sorted(p for p in folder.rglob("*") if p.is_file()) == before


def test_orphaned_compilers_of_the_killed_build_are_stopped_first(objdir):
    """make died with us (SIGKILL), its compilers did not: they are stopped
    before anything is removed, or they would write after the clean-up."""
    line, variant, folder = objdir
    orphan = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"],
                              preexec_fn=own_group_dying_with_parent)
    marker = folder / tree.RUNNING_MARKER
    stat = marker.stat()
    marker.write_text(f"{orphan.pid}\n")
    os.utime(marker, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    buildsystem.for_line(line).recovered_object_dir(line, variant, "kernel:pentium")
    orphan.wait(timeout=5)
    assert not group_alive(orphan.pid)


def _system_map(tmp_path, *symbols):
    path = tmp_path / "System.map"
    path.write_text("".join(f"c0100000 t {s}\n" for s in ("_text",) + symbols))
    return path


def test_a_kernel_missing_code_its_config_builds_in_is_refused(isolated, tmp_path):
    variant = matrix.load_line("linux-6.1").variant("pentium")
    config = tmp_path / ".config"
    config.write_text("CONFIG_PACKET=y\nCONFIG_INET=y\nCONFIG_BLK_DEV_RAM=y\n# CONFIG_NFS_FS is not set\n")
    build.verify_builtin_code(variant, config, _system_map(tmp_path, "packet_init", "inet_init", "brd_init"))
    with pytest.raises(KernelFailure, match=r"CONFIG_PACKET=y but none of packet_init is in System.map"):
        build.verify_builtin_code(variant, config, _system_map(tmp_path, "inet_init", "rd_init"))
