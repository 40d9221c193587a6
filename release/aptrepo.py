"""A release's apt repository, made with apt-ftparchive and signed with the
release key:

    apt/<key file>.asc                      the release key, for signed-by=
    apt/pool/<suite>/<package>_<version>_all.deb
    apt/dists/<suite>/Release, InRelease, Release.gpg
    apt/dists/<suite>/<component>/binary-<arch>/Packages, Packages.gz

One suite per package layout (configs/site.toml: ltsp23, ltsp3).
apt-ftparchive rather than reprepro: a release is built whole in a staging
folder and published by one rename, so a stateless tool that indexes a
folder fits; reprepro keeps a database (db/, conf/) of a repository it
updates in place, which would either be published or have to be carried
from release to release.  Release's Date is the line's SOURCE_DATE_EPOCH,
so the same packages give the same Release; the signatures are gpg's."""
import gzip
import subprocess
from email.utils import formatdate
from pathlib import Path

from debian.deb822 import Deb822

from common.errors import InfraError, UserError

KEY_FILE = "ltsp-mosix-release.asc"
INDEXES = ("Packages", "Packages.gz")


def apt_source_line(url: str, suite: str, component: str, keyring: str) -> str:
    return f"deb [signed-by={keyring}] {url} {suite} {component}"


def _ftparchive(args: list[str], cwd: Path) -> str:
    result = subprocess.run(["apt-ftparchive", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0 or "E:" in result.stderr:
        raise InfraError(f"apt-ftparchive {' '.join(args)} failed in {cwd}: {result.stderr.strip()[-500:]}")
    return result.stdout


def write_indexes(apt_dir: Path, suite: str, *, component: str, architectures: tuple[str, ...],
                  origin: str, label: str, description: str, epoch: int) -> Path:
    """Packages (sorted by package name, whatever order the folder lists)
    for each architecture, then Release; returns the Release file."""
    pool = f"pool/{suite}"
    stanzas = list(Deb822.iter_paragraphs(_ftparchive(["packages", pool], apt_dir)))
    if not stanzas:
        raise InfraError(f"apt-ftparchive found no package in {apt_dir / pool}")
    text = "\n".join(s.dump() for s in sorted(stanzas, key=lambda s: (s["Package"], s["Version"])))
    dists = apt_dir / "dists" / suite
    for arch in architectures:
        folder = dists / component / f"binary-{arch}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Packages").write_text(text)
        (folder / "Packages.gz").write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    options = {"Origin": origin, "Label": label, "Suite": suite, "Codename": suite,
               "Architectures": " ".join(architectures), "Components": component,
               "Description": description, "Date": formatdate(epoch, usegmt=True)}
    args = [arg for name, value in options.items() for arg in ("-o", f"APT::FTPArchive::Release::{name}={value}")]
    release = _ftparchive([*args, "release", "."], dists)
    (dists / "Release").write_text(release)
    return dists / "Release"


def sign_release(release: Path, fingerprint: str, gnupghome: Path) -> None:
    """InRelease (clearsigned) and Release.gpg (detached, armoured) beside
    Release, by the release key from the keyring named explicitly."""
    import gnupg
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    data = release.read_bytes()
    for name, how in (("InRelease", {"clearsign": True}), ("Release.gpg", {"clearsign": False, "detach": True})):
        signed = gpg.sign(data, keyid=fingerprint, binary=False, extra_args=["--digest-algo", "SHA256"], **how)
        if not signed or signed.fingerprint != fingerprint:
            raise InfraError(f"gpg could not sign {release} ({name}) with {fingerprint}: "
                             f"{signed.stderr.strip()[-300:]}")
        (release.parent / name).write_bytes(signed.data)


def export_key(apt_dir: Path, fingerprint: str, gnupghome: Path) -> Path:
    import gnupg
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    armored = gpg.export_keys(fingerprint, minimal=True)
    if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
        raise UserError(f"release key {fingerprint} cannot be exported from {gnupghome}")
    path = apt_dir / KEY_FILE
    path.write_text(armored)
    return path
