"""An x86-64 node root from Debian's own packages, as a real LTSP server
would serve it read-only over NFS: every file the listed packages installed
on this machine (`dpkg -L`; documentation, manual pages and locales left
out), the shared-library closure of their programs (`ldd`, each library
with the package that owns it), the node init and the migration test's
perl script (initrd/node/), and empty mount points.

    make_debian_root(target, spec=root_spec())  -> DebianRoot

The root is built in a temporary folder and renamed into place.  Files keep
their bytes and modes; every time stamp is the line's SOURCE_DATE_EPOCH;
`etc/ltsp-mosix/root.json` lists each package with its version and the
root's content digest, so two builds from the same installed packages are
the same root.  A package that is not installed is an error naming it and
the apt-get command (setup.sh installs them)."""
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common.data import read_toml, require
from common.errors import InfraError, UserError
from common.paths import atomic_tree, configs_dir

NODE_FILES = Path(__file__).resolve().parent / "node"
NODE_INIT = "/usr/sbin/ltsp-mosix-node"
COUNT_SCRIPT = "/usr/share/ltsp-mosix/count.pl"
MANIFEST = "etc/ltsp-mosix/root.json"
# What a node writes goes to tmpfs or the cluster export, never the root.
MOUNT_POINTS = ("proc", "sys", "dev", "run", "tmp", "cluster", "mfs", "var/lib/ltsp-mosix")
# Debian 12 is merged-/usr: these are symlinks into usr/.
MERGED = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
SKIPPED = re.compile(r"^/usr/share/(doc|man|info|locale|lintian|bug)/")


@dataclass(frozen=True)
class RootSpec:
    packages: tuple[str, ...]
    source_date_epoch: int


@dataclass(frozen=True)
class DebianRoot:
    path: Path
    packages: dict            # package -> version (listed ones and library owners)
    digest: str               # sha256 over every path, mode, and content or link target
    files: int
    bytes: int


def root_spec_file() -> Path:
    return configs_dir() / "noderoot.toml"


def root_spec() -> RootSpec:
    path = root_spec_file()
    data = read_toml(path)
    packages = require(data, "packages", list, path)
    if not packages or not all(isinstance(p, str) and re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", p)
                               for p in packages):
        raise UserError(f"{path}: field 'packages' must list Debian package names, not {packages!r}")
    return RootSpec(tuple(packages), require(data, "source_date_epoch", int, path))


def _dpkg(*args: str) -> str:
    proc = subprocess.run(["dpkg-query", *args], capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C"})
    if proc.returncode != 0:
        raise InfraError(f"dpkg-query {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def installed_version(package: str) -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", package],
                          capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    status, _, version = proc.stdout.partition(" ")
    if proc.returncode != 0 or status != "installed":
        raise InfraError(f"Debian package {package} is not installed on this machine: the node root "
                         f"is built from installed packages (apt-get install {package})")
    return version.strip()


def package_files(package: str) -> list[str]:
    """The paths a package installed (files and symlinks, no folders)."""
    installed_version(package)
    found = []
    for line in _dpkg("-L", package).splitlines():
        line = line.strip()
        if not line.startswith("/") or SKIPPED.match(line):
            continue
        if os.path.islink(line) or os.path.isfile(line):
            found.append(line)
    return found


def _owner(path: str) -> str:
    """The package owning a library path (dpkg -S knows the path as the
    package installed it, which merged-/usr may have moved)."""
    candidates = [path]
    if path.startswith("/usr/"):
        candidates.append(path[4:])
    else:
        candidates.append("/usr" + path)
    for candidate in candidates:
        proc = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"})
        if proc.returncode == 0:
            return proc.stdout.split(":", 1)[0].strip()
    raise InfraError(f"{path} belongs to no Debian package: the node root takes only packaged files")


_LDD_LIB = re.compile(r"=>\s+(/\S+)\s+\(0x")
_LDD_LOADER = re.compile(r"^\s*(/\S+)\s+\(0x")


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def library_closure(programs: list[str]) -> set[str]:
    """Every shared library (and the loader) the ELF files need, by ldd."""
    needed = set()
    for program in programs:
        if os.path.islink(program) or not _is_elf(program):
            continue
        proc = subprocess.run(["ldd", program], capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"})
        if proc.returncode != 0:         # static programs: "not a dynamic executable"
            continue
        for line in proc.stdout.splitlines():
            if "not found" in line:
                raise InfraError(f"ldd {program}: {line.strip()}: this machine's packages are incomplete")
            match = _LDD_LIB.search(line) or _LDD_LOADER.search(line)
            if match:
                needed.add(match.group(1))
    return needed


def _target_path(root: Path, path: str) -> Path:
    """Where a host path goes in the root: through the merged-/usr links."""
    relative = path.lstrip("/")
    first, _, rest = relative.partition("/")
    if first in MERGED and rest:
        relative = f"{MERGED[first]}/{rest}"
    return root / relative


def _copy(root: Path, path: str) -> None:
    target = _target_path(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        return
    if os.path.islink(path):
        os.symlink(os.readlink(path), target)
        # a library's symlink chain: its target comes along
        resolved = os.path.realpath(path)
        if os.path.isfile(resolved) and resolved != path:
            _copy(root, resolved)
    else:
        shutil.copy2(path, target, follow_symlinks=False)
        target.chmod(stat.S_IMODE(os.stat(path).st_mode))


def _install(root: Path, source: Path, path: str, mode: int) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def _digest(root: Path) -> tuple[str, int, int]:
    digest, files, size = hashlib.sha256(), 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            relative = str(path.relative_to(root))
            if relative == MANIFEST:
                continue
            info = path.lstat()
            digest.update(f"{relative}\0{stat.S_IMODE(info.st_mode):o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(b"L" + os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(b"F" + hashlib.sha256(path.read_bytes()).digest())
                files += 1
                size += info.st_size
            digest.update(b"\n")
    return digest.hexdigest(), files, size


def _set_times(root: Path, epoch: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(Path(dirpath) / name, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def make_debian_root(target: Path, spec: RootSpec | None = None) -> DebianRoot:
    spec = spec or root_spec()
    versions = {package: installed_version(package) for package in spec.packages}
    with atomic_tree(Path(target)) as work:
        for link, into in MERGED.items():
            (work / into).mkdir(parents=True, exist_ok=True)
            os.symlink(into, work / link)
        programs = []
        for package in spec.packages:
            for path in package_files(package):
                _copy(work, path)
                programs.append(path)
        for library in sorted(library_closure(programs)):
            owner = _owner(library)
            versions.setdefault(owner, installed_version(owner))
            _copy(work, library)
        _install(work, NODE_FILES / "ltsp-mosix-node", NODE_INIT, 0o755)
        _install(work, NODE_FILES / "count.pl", COUNT_SCRIPT, 0o755)
        for point in MOUNT_POINTS:
            (work / point).mkdir(parents=True, exist_ok=True)
        (work / "tmp").chmod(0o1777)
        (work / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (work / "etc" / "group").write_text("root:x:0:\n")
        _set_times(work, spec.source_date_epoch)
        digest, files, size = _digest(work)
        manifest = work / MANIFEST
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"packages": dict(sorted(versions.items())), "digest": digest,
                                        "files": files, "bytes": size}, indent=2) + "\n")
        os.utime(manifest, (spec.source_date_epoch,) * 2)
        os.utime(manifest.parent, (spec.source_date_epoch,) * 2)
    return DebianRoot(Path(target), dict(sorted(versions.items())), digest, files, size)
