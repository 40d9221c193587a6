"""safe_extract on real tarballs, good and hostile."""
import io
import tarfile

import pytest

from common.errors import UserError
from kernels.unpack import safe_extract
from tests.net_fixtures import make_tarball


def hostile_tarball(path, hostile: tarfile.TarInfo, data: bytes = b""):
    """A good file first (so a half tree would exist), then the hostile member."""
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("pkg-1.0/Makefile")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"all:"))
        tar.addfile(hostile, io.BytesIO(data) if data else None)
    return path


def member(name, kind=tarfile.REGTYPE, linkname="", size=0):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size
    return info


def assert_nothing_left(tmp_path, dest):
    assert not dest.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == []


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("suffix", [".tar", ".gz", ".bz2", ".xz"])
def test_extracts_with_strip_components(tmp_path, out, suffix):
    archive = make_tarball(tmp_path / f"pkg-1.0{'.tar' if suffix != '.tar' else ''}{suffix}",
                           {"Makefile": b"all:\n", "kernel/sched.c": b"int x;\n"})
    dest = safe_extract(archive, out / "src", strip_components=1)
    assert (dest / "Makefile").read_bytes() == b"all:\n"
    assert (dest / "kernel" / "sched.c").read_bytes() == b"int x;\n"
    assert sorted(p.name for p in out.iterdir()) == ["src"]   # no staging dir left


def test_strip_zero_keeps_the_top_directory(tmp_path, out):
    archive = make_tarball(tmp_path / "pkg.tar.gz", {"Makefile": b"all:\n"})
    safe_extract(archive, out / "src", strip_components=0)
    assert (out / "src" / "pkg-1.0" / "Makefile").is_file()


def test_symlink_inside_the_tree_is_fine(tmp_path, out):
    archive = tmp_path / "pkg.tar.gz"
    hostile_tarball(archive, member("pkg-1.0/include/asm", tarfile.SYMTYPE, "../Makefile"))
    safe_extract(archive, out / "src")
    assert (out / "src" / "include" / "asm").read_bytes() == b"all:"


def test_hard_link_inside_the_tree_is_fine(tmp_path, out):
    archive = tmp_path / "pkg.tar.gz"
    hostile_tarball(archive, member("pkg-1.0/Makefile.copy", tarfile.LNKTYPE, "pkg-1.0/Makefile"))
    safe_extract(archive, out / "src")
    copy, original = out / "src" / "Makefile.copy", out / "src" / "Makefile"
    assert copy.read_bytes() == b"all:" and copy.stat().st_ino == original.stat().st_ino


def test_set_uid_bits_are_dropped(tmp_path, out):
    archive = tmp_path / "pkg.tar.gz"
    setuid = member("pkg-1.0/tool", size=2)
    setuid.mode = 0o4755
    hostile_tarball(archive, setuid, b"#!")
    safe_extract(archive, out / "src")
    assert (out / "src" / "tool").stat().st_mode & 0o7777 == 0o755


def test_replaces_an_existing_dest_only_on_success(tmp_path, out):
    dest = out / "src"
    dest.mkdir()
    (dest / "old").write_text("old tree")
    safe_extract(make_tarball(tmp_path / "pkg.tar.gz", {"Makefile": b"all:\n"}), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["Makefile"]
    bad = hostile_tarball(tmp_path / "bad.tar.gz", member("pkg-1.0/../../evil", size=1), b"x")
    with pytest.raises(UserError):
        safe_extract(bad, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["Makefile"]   # untouched
    assert sorted(p.name for p in out.iterdir()) == ["src"]


@pytest.mark.parametrize("hostile, words", [
    (member("pkg-1.0/../../evil", size=1), "'..' component"),
    (member("/etc/evil", size=1), "absolute path"),
    (member("pkg-1.0/link", tarfile.SYMTYPE, "../../../etc/passwd"), "points outside the tree"),
    (member("pkg-1.0/link", tarfile.SYMTYPE, "../outside"), "points outside the tree"),
    (member("pkg-1.0/link", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
    (member("pkg-1.0/hard", tarfile.LNKTYPE, "../etc/passwd"), "'..' component"),
    (member("pkg-1.0/hard", tarfile.LNKTYPE, "/etc/passwd"), "absolute hard link target"),
    (member("pkg-1.0/null", tarfile.CHRTYPE), "device files"),
    (member("pkg-1.0/disk", tarfile.BLKTYPE), "device files"),
    (member("pkg-1.0/fifo", tarfile.FIFOTYPE), "FIFOs"),
])
def test_hostile_member_is_refused_and_no_half_tree_is_left(tmp_path, out, hostile, words):
    archive = hostile_tarball(tmp_path / "evil.tar.gz", hostile, b"x" if hostile.size else b"")
    with pytest.raises(UserError) as error:
        safe_extract(archive, out / "src")
    message = str(error.value)
    assert str(archive) in message and repr(hostile.name) in message and words in message
    assert_nothing_left(tmp_path, out / "src")
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_link_chain_escaping_on_disk_is_caught_by_the_data_filter(tmp_path, out):
    """`a -> .` is inside; `a/../x`-style tricks are refused by name, and
    anything resolving outside through links on disk by tarfile's filter."""
    archive = tmp_path / "chain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(member("pkg-1.0/sub", tarfile.DIRTYPE))
        tar.addfile(member("pkg-1.0/sub/up", tarfile.SYMTYPE, ".."))
        tar.addfile(member("pkg-1.0/sub/up/escape", tarfile.SYMTYPE, "../x"))
    with pytest.raises(UserError, match="refusing member 'pkg-1.0/sub/up/escape'"):
        safe_extract(archive, out / "src")
    assert_nothing_left(tmp_path, out / "src")


def test_corrupt_archive_is_a_user_error(tmp_path, out):
    archive = tmp_path / "pkg.tar.xz"
    archive.write_bytes(b"\xfd7zXZ\x00 this is not xz data at all")
    with pytest.raises(UserError, match=str(archive)):
        safe_extract(archive, out / "src")
    assert_nothing_left(tmp_path, out / "src")


def test_archive_with_nothing_below_the_stripped_level(tmp_path, out):
    archive = tmp_path / "flat.tar"
    with tarfile.open(archive, "w") as tar:
        tar.addfile(member("README", size=2), io.BytesIO(b"hi"))
    with pytest.raises(UserError, match="nothing to unpack"):
        safe_extract(archive, out / "src", strip_components=1)
    assert_nothing_left(tmp_path, out / "src")
