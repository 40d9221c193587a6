"""Unpack a source tarball without trusting its member names.

A member is refused (UserError naming the archive and the member) when it
is an absolute path, has a `..` component, is a device file or FIFO, or is a
symlink or hard link whose target lands outside the tree.  These checks run
on the names as written in the archive; tarfile's `data` filter then runs on
top of them (it also resolves links already on disk, and drops set-uid bits
and ownership).  Everything is extracted into a temporary directory beside
`dest`, which replaces `dest` only when the whole archive went well: a
failure never leaves half a tree.
"""
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from common.errors import InfraError, UserError
from common.paths import replace_tree


def safe_extract(archive: Path, dest: Path, strip_components: int = 1) -> Path:
    """Extract a .tar/.tar.gz/.tar.bz2/.tar.xz into `dest` (replaced if it
    exists), dropping the first `strip_components` path components of every
    member (like tar --strip-components).  Returns dest."""
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
    try:
        count = _extract_all(archive, staging, strip_components)
        if count == 0:
            raise UserError(f"{archive}: nothing to unpack below {strip_components} "
                            f"leading path component(s)")
        replace_tree(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _extract_all(archive: Path, staging: Path, strip_components: int) -> int:
    """Stream through the archive once ("r|*": no seeking, so a big .tar.xz
    is decompressed a single time), checking each member before writing it."""
    count = 0
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                renamed = _checked_member(member, archive, strip_components)
                if renamed is not None:
                    _extract_member(tar, renamed, member.name, staging, archive)
                    count += 1
    except (tarfile.ReadError, tarfile.CompressionError, EOFError) as error:
        raise UserError(f"{archive}: not a readable tar archive: {error}") from None
    except tarfile.StreamError as error:
        raise UserError(f"{archive}: cannot be unpacked in one pass: {error}") from None
    except OSError as error:
        raise InfraError(f"unpacking {archive} into {staging}: {error}") from None
    return count


def _extract_member(tar, member, original_name: str, staging: Path, archive: Path) -> None:
    try:
        tar.extract(member, staging, filter="data")
    except tarfile.FilterError as error:
        raise UserError(f"{archive}: refusing member {original_name!r}: {error}") from None


def _checked_member(member: tarfile.TarInfo, archive: Path, strip: int) -> tarfile.TarInfo | None:
    """The member renamed for extraction, None to skip it (the stripped
    leading directories), or a UserError when it is unsafe."""
    def refuse(why: str):
        return UserError(f"{archive}: refusing member {member.name!r}: {why}")

    _check_name(member.name, refuse)
    if member.ischr() or member.isblk() or member.isfifo():
        raise refuse("device files and FIFOs have no place in a source tree")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise refuse(f"unsupported member type {member.type!r}")
    if member.islnk():
        _check_name(member.linkname, refuse, what="hard link target")
    name = _strip(member.name, strip)
    if name is None:
        return None
    if member.issym():
        _check_symlink(name, member.linkname, refuse)
    changes = {"name": name}
    if member.islnk():
        link = _strip(member.linkname, strip)
        if link is None:
            raise refuse(f"hard link target {member.linkname!r} is stripped away")
        changes["linkname"] = link
    return member.replace(**changes, deep=False)


def _check_name(name: str, refuse, what: str = "path") -> None:
    if name.startswith("/"):
        raise refuse(f"absolute {what} {name!r}")
    if ".." in name.split("/"):
        raise refuse(f"{what} {name!r} has a '..' component")


def _check_symlink(name: str, target: str, refuse) -> None:
    """`name` is the link's path after stripping: the tree that must
    contain the target is the one written to dest."""
    if target.startswith("/"):
        raise refuse(f"symlink to the absolute path {target!r}")
    # Resolved from the link's own directory, the target must stay inside
    # the tree (lexically; the data filter re-checks on disk).
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise refuse(f"symlink target {target!r} points outside the tree")


def _strip(name: str, count: int) -> str | None:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if len(parts) <= count:
        return None
    return "/".join(parts[count:])
