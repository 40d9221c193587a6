"""The node init and its two initrd formats: builds, byte-reproducible,
readable by the standard tools (GNU cpio, e2fsprogs' debugfs)."""
import shutil
import struct
import subprocess

import pytest

from common.errors import InfraError, UserError
from initrd import build
from initrd.build import BOOT_MARKER, compile_init, make_cpio_initrd, make_ext2_initrd
from initrd.cpio import CpioEntry, newc_archive

CPIO_NAMES = ["dev", "dev/console", "init", "proc", "sys"]


@pytest.fixture(scope="module")
def init_binary(tmp_path_factory):
    return compile_init(tmp_path_factory.mktemp("init"))


def test_init_is_a_static_i386_elf_with_the_marker(init_binary):
    data = init_binary.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert data[4] == 1, "ELFCLASS32"
    assert struct.unpack_from("<H", data, 18)[0] == 3, "EM_386"
    phnum = struct.unpack_from("<H", data, 44)[0]
    phoff = struct.unpack_from("<I", data, 28)[0]
    types = [struct.unpack_from("<I", data, phoff + 32 * i)[0] for i in range(phnum)]
    assert 3 not in types, "PT_INTERP: the init must be static"
    assert BOOT_MARKER.encode() in data
    assert len(data) < 16 * 1024


def test_init_build_is_reproducible(init_binary, tmp_path):
    assert compile_init(tmp_path).read_bytes() == init_binary.read_bytes()


def test_compile_reports_missing_multilib(tmp_path, monkeypatch):
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(build, "_gcc_can_target_i386", lambda gcc: False)
    with pytest.raises(InfraError, match="gcc-multilib"):
        compile_init(tmp_path / "out", source=broken)
    assert not list((tmp_path / "out").glob("*")), "no half-written init left behind"


def test_compile_error_names_the_source(tmp_path):
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    with pytest.raises(UserError, match="broken.c"):
        compile_init(tmp_path, source=broken)


def test_compile_without_gcc_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match="`gcc"):
        compile_init(tmp_path)


def test_cpio_is_reproducible_and_lists_exactly_its_entries(init_binary, tmp_path):
    first = make_cpio_initrd(tmp_path / "a.cpio", init_binary)
    second = make_cpio_initrd(tmp_path / "b.cpio", init_binary)
    assert first.read_bytes() == second.read_bytes()
    listing = subprocess.run(["cpio", "-t", "--quiet"], stdin=first.open("rb"),
                             capture_output=True, text=True, check=True).stdout.split()
    assert listing == CPIO_NAMES
    verbose = subprocess.run(["cpio", "-tv", "--quiet"], stdin=first.open("rb"),
                             capture_output=True, text=True, check=True).stdout
    console = next(line for line in verbose.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console
    assert all(" root " in line for line in verbose.splitlines())


def test_cpio_extracts_the_init_unchanged(init_binary, tmp_path):
    archive = make_cpio_initrd(tmp_path / "i.cpio", init_binary)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-i", "--quiet", "--no-absolute-filenames", "init"],
                   stdin=archive.open("rb"), cwd=out, check=True)
    assert (out / "init").read_bytes() == init_binary.read_bytes()


def test_newc_headers_have_fixed_owner_time_and_inodes():
    data = newc_archive([CpioEntry.file("b", b"xyz"), CpioEntry.directory("a")])
    assert data.startswith(b"070701")
    fields = [int(data[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
    ino, mode, uid, gid, nlink, mtime = fields[:6]
    assert (ino, uid, gid, mtime, nlink) == (1, 0, 0, 0, 2)     # "a" sorts first
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")
    assert len(data) % 4 == 0


def test_newc_refuses_absolute_and_duplicate_names():
    with pytest.raises(ValueError):
        newc_archive([CpioEntry.directory("/dev")])
    with pytest.raises(ValueError):
        newc_archive([CpioEntry.directory("dev"), CpioEntry.directory("dev")])


def _debugfs(image, request):
    return subprocess.run(["debugfs", "-R", request, str(image)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("debugfs") is None, reason="e2fsprogs' debugfs not installed")
def test_ext2_is_reproducible_and_holds_linuxrc_init_and_console(init_binary, tmp_path):
    first = make_ext2_initrd(tmp_path / "a.ext2", init_binary)
    second = make_ext2_initrd(tmp_path / "b.ext2", init_binary)
    assert first.read_bytes() == second.read_bytes()
    assert first.stat().st_size == build.EXT2_SIZE_KIB * 1024
    root = _debugfs(first, "ls -l /")
    assert "linuxrc" in root and "dev" in root and "proc" in root
    console = _debugfs(first, "stat /dev/console")
    assert "Type: character special" in console
    assert "Device major/minor number: 05:01" in console
    for path in ("/linuxrc", "/sbin/init"):
        dumped = tmp_path / path.strip("/").replace("/", "_")
        _debugfs(first, f"dump {path} {dumped}")
        assert dumped.read_bytes() == init_binary.read_bytes()


def test_ext2_without_genext2fs_names_the_package(init_binary, tmp_path, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match="genext2fs"):
        make_ext2_initrd(tmp_path / "x.ext2", init_binary)
    assert not list(tmp_path.iterdir())


def test_missing_init_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nope"):
        make_cpio_initrd(tmp_path / "i.cpio", tmp_path / "nope")
