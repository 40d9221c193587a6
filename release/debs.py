"""Debian packages of a release, built with Debian's own tools: the control
file and changelog through python-debian, the archive by
`dpkg-deb --build --root-owner-group`.  Reproducible: files copied with
normalised modes and SOURCE_DATE_EPOCH as every mtime, gzip without name
or time, dpkg-deb's own members dated SOURCE_DATE_EPOCH.  Compressed with
gzip (-9): every dpkg reads it, an LTSP 3 era server's included, and it
builds four times faster than xz for a few percent more bytes.

Names and versions (what an administrator reads in `apt list`):

    ltsp-mosix-<line>-<variant>   one kernel variant (kernel, System.map,
                                  config, its initrd), e.g.
                                  ltsp-mosix-linux-2.4.22-pentium-smp
    ltsp-mosix-<line>-core        the line's site files (node overlay,
                                  map, rc script, server snippets)
    Version: <kernel release>-<deb_revision of the line>, e.g. 2.4.22-1

Every package is Architecture: all: it carries files a node boots, not
programs the server runs.  Where the files land is the layout's
(configs/site.toml, rootfs.layout)."""
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from debian.changelog import Changelog
from debian.deb822 import Deb822
from debian.debian_support import Version, version_compare

from common.errors import InfraError, UserError, VerificationError
from rootfs.layout import PackageLayout, PackageSettings

PREFIX = "ltsp-mosix"
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_UPSTREAM = re.compile(r"[0-9][A-Za-z0-9.+~]*")


def package_name(line_name: str, what: str) -> str:
    """ltsp-mosix-<line>-<what>, "_" as "-", lower case; refused if Debian
    would not take it as a package name."""
    name = f"{PREFIX}-{line_name}-{what}".lower().replace("_", "-")
    if not _NAME.fullmatch(name):
        raise UserError(f"package name {name!r} (line {line_name}, {what}) is not a Debian package name: "
                        f"lower-case letters, digits, '+', '-' and '.' only")
    return name


def package_version(kernel_release: str, revision: int, line_name: str) -> str:
    """<kernel release>-<revision>.  The kernel release must sort as dpkg
    sorts versions (digits first, no '-' or ':' of its own)."""
    if not _UPSTREAM.fullmatch(kernel_release):
        raise UserError(f"line {line_name}: kernel release {kernel_release!r} cannot start a Debian version "
                        f"(it must start with a digit and hold only letters, digits, '.', '+' and '~')")
    version = f"{kernel_release}-{revision}"
    Version(version)          # python-debian refuses what dpkg would refuse
    return version


def newer(candidate: str, than: str) -> bool:
    return version_compare(candidate, than) > 0


def deb_file_name(package: str, version: str) -> str:
    return f"{package}_{version}_all.deb"


@dataclass
class DebSpec:
    """One package: its files (path on the server -> source), texts it
    generates (path -> (bytes, mode)) and control data."""
    package: str
    version: str
    layout: PackageLayout
    kind: str                       # "kernel" or "core"
    summary: str                    # Description's first line
    details: list[str]              # Description's paragraphs
    changes: list[str]              # changelog entry
    section: str = "kernel"
    files: dict[str, Path] = field(default_factory=dict)
    trees: dict[str, Path] = field(default_factory=dict)     # prefix on the server -> folder to copy
    texts: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    license_note: str = ""


def build_deb(spec: DebSpec, out_dir: Path, *, epoch: int, settings: PackageSettings) -> Path:
    """The package at out_dir/<package>_<version>_all.deb; returns its path."""
    if len(spec.summary) > 78:
        raise UserError(f"{spec.package}: description {spec.summary!r} is longer than 78 characters")
    with tempfile.TemporaryDirectory(prefix=f"deb-{spec.package}-") as work:
        root = Path(work) / "root"
        root.mkdir()
        owned = _place(spec, root)
        doc = f"usr/share/doc/{spec.package}"
        _write(root, f"{doc}/copyright", _copyright(spec, epoch).encode(), 0o644, owned)
        _write(root, f"{doc}/changelog.Debian.gz", _gzip(_changelog(spec, epoch, settings).encode()), 0o644, owned)
        if spec.layout.lintian_overrides:
            text = "".join(f"# {reason}\n{spec.package}: {tag}\n" for tag, reason in spec.layout.lintian_overrides)
            _write(root, f"usr/share/lintian/overrides/{spec.package}", text.encode(), 0o644, owned)
        control = root / "DEBIAN"
        control.mkdir()
        (control / "control").write_text(_control(spec, root, settings))
        (control / "md5sums").write_text(_md5sums(root))
        _normalise(root, epoch)
        out = Path(out_dir) / deb_file_name(spec.package, spec.version)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        result = subprocess.run(["dpkg-deb", "--build", "--root-owner-group", "-Zgzip", "-z9", str(root), str(partial)],
                                capture_output=True, text=True,
                                env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)})
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise InfraError(f"dpkg-deb could not build {out.name}: {result.stderr.strip()[-500:]}")
        os.replace(partial, out)
    return out


def contents(deb: Path) -> dict[str, str]:
    """Regular files of a package: path on the server -> sha256, read from
    its data archive by dpkg-deb (what dpkg installs).  The release records
    them; verify-release checks the kernel among them.  An archive dpkg-deb
    cannot read is a VerificationError naming the package."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        listing = {}
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        digest = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
                        listing["/" + member.name.lstrip("./")] = digest
        except tarfile.TarError as error:
            raise VerificationError(f"{deb}: not a readable Debian package ({error})") from None
    if proc.returncode != 0:
        raise VerificationError(f"{deb}: not a readable Debian package (dpkg-deb exit {proc.returncode})")
    return dict(sorted(listing.items()))


def _place(spec: DebSpec, root: Path) -> set[str]:
    owned: set[str] = set()
    for target, source in sorted(spec.files.items()):
        _claim(spec, target, owned)
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        path.chmod(0o755 if os.access(source, os.X_OK) else 0o644)
    for prefix, folder in sorted(spec.trees.items()):
        for source in sorted(Path(folder).rglob("*")):
            target = f"{prefix}/{source.relative_to(folder)}"
            path = root / target
            if source.is_symlink():
                _claim(spec, target, owned)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.symlink_to(os.readlink(source))
            elif source.is_dir():
                path.mkdir(parents=True, exist_ok=True)
            else:
                _claim(spec, target, owned)
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, path)
                path.chmod(0o755 if os.access(source, os.X_OK) else 0o644)
    for target, (data, mode) in sorted(spec.texts.items()):
        _write(root, target, data, mode, owned)
    return owned


def _claim(spec: DebSpec, target: str, owned: set[str]) -> None:
    if target in owned:
        raise UserError(f"layout {spec.layout.name}: {spec.package} would install /{target} twice "
                        f"(two of its paths in configs/site.toml give the same file)")
    owned.add(target)


def _write(root: Path, target: str, data: bytes, mode: int, owned: set[str]) -> None:
    if target in owned:
        raise UserError(f"/{target} would be written twice into one package")
    owned.add(target)
    path = root / target
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _normalise(root: Path, epoch: int) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    root.chmod(0o755)
    os.utime(root, (epoch, epoch))


def _installed_size(root: Path) -> int:
    """KiB, counted as dpkg-gencontrol counts: each file rounded up, one
    per directory or link."""
    total = 0
    for path in root.rglob("*"):
        if path.relative_to(root).parts[0] == "DEBIAN":
            continue
        total += 1 if path.is_symlink() or path.is_dir() else (path.stat().st_size + 1023) // 1024
    return max(total, 1)


def _control(spec: DebSpec, root: Path, settings: PackageSettings) -> str:
    control = Deb822()
    control["Package"] = spec.package
    control["Version"] = spec.version
    control["Architecture"] = "all"
    control["Maintainer"] = settings.maintainer
    control["Installed-Size"] = str(_installed_size(root))
    if spec.kind == "core" and spec.layout.exclusive:
        control["Provides"] = spec.layout.exclusive
        control["Conflicts"] = spec.layout.exclusive
    control["Section"] = spec.section
    control["Priority"] = "optional"
    control["Description"] = spec.summary + "".join(
        "\n" + ("\n".join(f" {text}" for text in _wrap(paragraph)) if paragraph else " .")
        for paragraph in _paragraphs(spec.details))
    return control.dump()


def _paragraphs(details: list[str]) -> list[str]:
    out: list[str] = []
    for paragraph in details:
        if out:
            out.append("")
        out.append(paragraph)
    return out


def _wrap(text: str, width: int = 78) -> list[str]:
    return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def _changelog(spec: DebSpec, epoch: int, settings: PackageSettings) -> str:
    changelog = Changelog()
    changelog.new_block(package=spec.package, version=spec.version, distributions=spec.layout.name,
                        urgency="medium", author=settings.maintainer, date=formatdate(epoch, usegmt=False))
    changelog.add_change("")
    for change in spec.changes:
        lines = _wrap(change, 74)
        changelog.add_change(f"  * {lines[0]}")
        for more in lines[1:]:
            changelog.add_change(f"    {more}")
    changelog.add_change("")
    return str(changelog)


def _copyright(spec: DebSpec, epoch: int) -> str:
    year = time.gmtime(epoch).tm_year
    header = Deb822()
    header["Format"] = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    header["Upstream-Name"] = "Linux" if spec.kind == "kernel" else "ltsp-mosix site files"
    if spec.license_note:
        header["Comment"] = spec.license_note
    files = Deb822()
    files["Files"] = "*"
    files["Copyright"] = (f"1991-{year} Linus Torvalds and the Linux kernel contributors" if spec.kind == "kernel"
                          else f"{year} the site that built this release with ltsp-mosix")
    files["License"] = ("GPL-2\n On Debian systems, the complete text of the GNU General Public License "
                        "version 2\n can be found in /usr/share/common-licenses/GPL-2.")
    return header.dump() + "\n" + files.dump()


def _md5sums(root: Path) -> str:
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == "DEBIAN" or path.is_symlink() or not path.is_file():
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}\n")
    return "".join(lines)


def check_disjoint(debs: dict[str, dict[str, str]], layout: str) -> None:
    """Two packages of one layout never own the same file: dpkg would refuse
    the second install (or, forced, lose the first one's file)."""
    owner: dict[str, str] = {}
    for package, files in sorted(debs.items()):
        for path in files:
            if path in owner:
                raise UserError(f"layout {layout} in configs/site.toml: {owner[path]} and {package} "
                                f"would both install {path}")
            owner[path] = package
