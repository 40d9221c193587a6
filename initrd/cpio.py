"""A pure-Python writer for the `newc` cpio format the kernel unpacks as an
initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).

Reproducible by construction, as in virtme-ng: owner 0:0, mtime 0, names
sorted, inode numbers given by position; nothing is read from the host's
file metadata except what the caller passes in."""
import stat
from dataclasses import dataclass

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class CpioEntry:
    """One archive member.  name is relative ("dev/console", no leading
    slash); mode includes the file type bits (stat.S_IFREG | 0o755)."""

    name: str
    mode: int
    data: bytes = b""
    rdev_major: int = 0
    rdev_minor: int = 0

    @staticmethod
    def directory(name: str, perm: int = 0o755) -> "CpioEntry":
        return CpioEntry(name, stat.S_IFDIR | perm)

    @staticmethod
    def file(name: str, data: bytes, perm: int = 0o644) -> "CpioEntry":
        return CpioEntry(name, stat.S_IFREG | perm, data)

    @staticmethod
    def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> "CpioEntry":
        return CpioEntry(name, stat.S_IFCHR | perm, b"", major, minor)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(ino: int, mode: int, nlink: int, filesize: int,
            rdev: tuple[int, int], namesize: int) -> bytes:
    fields = (
        ino, mode, 0, 0, nlink, 0,     # ino mode uid gid nlink mtime
        filesize, 0, 0,                # filesize, devmajor/devminor of the (absent) source fs
        rdev[0], rdev[1], namesize, 0,  # rdevmajor rdevminor namesize(with NUL) check
    )
    return NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)


def _member(header: bytes, name: bytes, data: bytes) -> bytes:
    head = header + name + b"\0"
    return head + _pad4(len(head)) + data + _pad4(len(data))


def _validate(entries: list[CpioEntry]) -> None:
    names = [e.name for e in entries]
    for name in names:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"cpio entry name must be relative and plain: {name!r}")
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate cpio entries: {sorted(duplicates)}")


def newc_archive(entries: list[CpioEntry]) -> bytes:
    """The archive bytes for entries, sorted by name (a parent directory
    sorts before its children, which the kernel's unpacker needs)."""
    _validate(entries)
    out = bytearray()
    for ino, entry in enumerate(sorted(entries, key=lambda e: e.name), start=1):
        name = entry.name.encode()
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        header = _header(ino, entry.mode, nlink, len(entry.data),
                         (entry.rdev_major, entry.rdev_minor), len(name) + 1)
        out += _member(header, name, entry.data)
    trailer = TRAILER.encode()
    out += _member(_header(0, 0, 1, 0, (0, 0), len(trailer) + 1), trailer, b"")
    return bytes(out)
