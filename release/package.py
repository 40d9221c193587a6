"""Deterministic .tar.gz packages: sorted names, owner root:root, one fixed
mtime (SOURCE_DATE_EPOCH), normalised modes, gzip header without name or
time, so the same inputs always give the same bytes."""
import gzip
import io
import os
import tarfile
from pathlib import Path

from common.paths import atomic_write_bytes
from kernels import matrix


def kernel_package_name(line, variant, version: str) -> str:
    """<line package_name>_kernel_<CPU package_name>[_<nic>]_<version>.tar.gz,
    e.g. ltsp_openmosix_kernel_Pentium_SMP_2.4.22.tar.gz."""
    cpu = matrix.cpu_spec(variant.cpu).package_name
    nic = "" if variant.name == variant.cpu else f"_{variant.nic}"
    return f"{line.package_name}_kernel_{cpu}{nic}_{version}.tar.gz"


def core_package_name(line, version: str) -> str:
    return f"{line.package_name}_core_{version}.tar.gz"


def tree_entries(root: Path, prefix: str) -> dict[str, Path]:
    """arcname -> path for everything below root: files, symlinks (kept as
    links) and directories (empty ones matter: /mfs is a mount point)."""
    return {f"{prefix}/{path.relative_to(root)}": path for path in sorted(root.rglob("*"))}


def write_tar_gz(out: Path, entries: dict[str, Path], mtime: int) -> Path:
    """entries: arcname -> source file.  Parent directories are added
    explicitly so the archive unpacks the same everywhere."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in _with_parents(entries):
            source = entries.get(name)
            tar.addfile(*_member(name, source, mtime))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as archive:
        archive.write(buffer.getvalue())
    return atomic_write_bytes(out, packed.getvalue())


def _with_parents(entries: dict[str, Path]) -> list[str]:
    names = set(entries)
    for name in entries:
        parts = name.split("/")[:-1]
        names.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(names)


def _member(name: str, source: Path | None, mtime: int):
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
    if source is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info, None
    if source.is_symlink():
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(source), 0o777
        return info, None
    if source.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info, None
    data = source.read_bytes()
    info.size = len(data)
    info.mode = 0o755 if os.access(source, os.X_OK) else 0o644
    return info, io.BytesIO(data)
