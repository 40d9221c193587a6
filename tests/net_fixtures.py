"""Shared fixtures for the fetch/verify tests: a loopback HTTP server, real
OpenPGP keys (good, other, revoked, expired) made once per session by gpg in
a private home, and small real tarballs.

Use with `from tests.net_fixtures import *`.
"""
import io
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import gnupg
import pytest

from tests.httpserver import FileServer, closed_port_url

__all__ = ["file_server", "gpg_keys", "GpgKeys", "FileServer", "closed_port_url",
           "make_tarball", "uncompressed_tar_bytes"]

GPG = shutil.which("gpg") or "/usr/bin/gpg"


@pytest.fixture
def file_server():
    with FileServer() as server:
        yield server


# ---- OpenPGP keys -------------------------------------------------------------

@dataclass
class GpgKeys:
    home: Path          # signing home: secret keys, none revoked there
    keys_dir: Path      # public keys as <FPR>.asc, as configs/keys holds them
    good: str
    other: str          # a valid key, but not one a line lists
    revoked: str        # its .asc carries a revocation
    expired: str        # expired one day after its (faked) creation
    expired_signing_time: int

    def sign(self, fingerprint: str, data: bytes, out: Path) -> Path:
        """Detached, armored signature over `data` by `fingerprint`."""
        extra = []
        if fingerprint == self.expired:  # sign while the key was still valid
            extra = ["--faked-system-time", str(self.expired_signing_time)]
        _gpg(self.home, *extra, "--armor", "--local-user", fingerprint,
             "--output", str(out), "--detach-sign", "-", stdin=data)
        return out

    def clearsign(self, fingerprint: str, text: bytes) -> bytes:
        """`text` clearsigned by `fingerprint` (as kernel.org's sha256sums.asc)."""
        return _gpg(self.home, "--local-user", fingerprint, "--clearsign", "-", stdin=text)


def _gpg(home: Path, *args: str, stdin: bytes | None = None, batch: bool = True) -> bytes:
    command = [GPG, "--homedir", str(home), "--yes", "--pinentry-mode", "loopback",
               "--passphrase", ""] + (["--batch"] if batch else []) + list(args)
    result = subprocess.run(command, input=stdin if stdin is not None else b"",
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr.decode()}")
    return result.stdout


def _new_key(home: Path, uid: str, *extra: str, expire: str = "0") -> str:
    before = {key["fingerprint"] for key in gnupg.GPG(gnupghome=str(home)).list_keys()}
    _gpg(home, *extra, "--quick-gen-key", uid, "ed25519", "sign", expire)
    after = {key["fingerprint"] for key in gnupg.GPG(gnupghome=str(home)).list_keys()}
    (fingerprint,) = after - before
    return fingerprint


def _export(home: Path, fingerprint: str, keys_dir: Path) -> None:
    (keys_dir / f"{fingerprint}.asc").write_bytes(_gpg(home, "--armor", "--export", fingerprint))


def _export_revoked(home: Path, fingerprint: str, keys_dir: Path, scratch: Path) -> None:
    """The public key with its revocation certificate applied, made in a
    scratch home so the signing home can still sign with the key."""
    certificate = scratch / "revoke.asc"
    # gen-revoke refuses --batch; its questions are answered on fd 0:
    # really revoke? y / reason 0 (no reason) / empty description / confirm y
    _gpg(home, "--no-tty", "--command-fd", "0", "--output", str(certificate),
         "--gen-revoke", fingerprint, stdin=b"y\n0\n\ny\n", batch=False)
    public = _gpg(home, "--armor", "--export", fingerprint)
    other_home = scratch / "home"
    other_home.mkdir(mode=0o700)
    _gpg(other_home, "--import", stdin=public)
    _gpg(other_home, "--import", str(certificate))
    (keys_dir / f"{fingerprint}.asc").write_bytes(_gpg(other_home, "--armor", "--export",
                                                       fingerprint))
    subprocess.run(["gpgconf", "--homedir", str(other_home), "--kill", "all"], check=False)


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpg")
    home, keys_dir, scratch = base / "home", base / "keys", base / "scratch"
    home.mkdir(mode=0o700)
    keys_dir.mkdir()
    scratch.mkdir()
    created = int(time.time()) - 10 * 86400
    keys = GpgKeys(
        home=home, keys_dir=keys_dir,
        good=_new_key(home, "Good Signer <good@example.org>"),
        other=_new_key(home, "Other Signer <other@example.org>"),
        revoked=_new_key(home, "Revoked Signer <revoked@example.org>"),
        expired=_new_key(home, "Expired Signer <expired@example.org>",
                         "--faked-system-time", str(created), expire="1d"),
        expired_signing_time=created + 3600,
    )
    for fingerprint in (keys.good, keys.other, keys.expired):
        _export(home, fingerprint, keys_dir)
    _export_revoked(home, keys.revoked, keys_dir, scratch)
    yield keys
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


# ---- tarballs -------------------------------------------------------------------

_TAR_MODES = {".gz": "w:gz", ".bz2": "w:bz2", ".xz": "w:xz", ".tar": "w"}


def make_tarball(path: Path, files: dict[str, bytes], top: str = "pkg-1.0") -> Path:
    """A real tarball with `files` below the directory `top`."""
    with tarfile.open(path, _TAR_MODES[path.suffix]) as tar:
        directory = tarfile.TarInfo(top)
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_000_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def uncompressed_tar_bytes(path: Path) -> bytes:
    """What kernel.org signs: the .tar inside the .tar.{gz,bz2,xz}."""
    import bz2
    import gzip
    import lzma
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[path.suffix]
    with opener(path, "rb") as stream:
        return stream.read()
