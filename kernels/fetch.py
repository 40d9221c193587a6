"""Get a line's source into the download dir, verified, or refuse.

trust = "pinned": the sha256 in configs/lines/<line>.hash is required, and
checked before the file gets its real name in the download dir; when the
line names a signature, it is checked too (a revoked key, if accepted, is a
warning, never a replacement for the pin).  An unpinned source is refused
before any network request; `pin_source` is the deliberate way to pin one.
An unpinned source whose line names a signed checksum listing (kernel.org's
sha256sums.asc) is pinned from the listing's verified text instead
(kernels/listing.py): no trust on first use.

trust = "debian-package": the file was installed (and verified) by apt;
`dpkg --verify` re-checks it, and its sha256 and the package version are
recorded, not pinned.  It is used in place, not copied.

The verification cache: a cached file is re-checked on every call, but
hashing a few hundred MB each time would make a no-op `doit fetch` slow.
So after a full check, `<file>.verified` (JSON, beside the file) records the
file's size, mtime, ctime and inode, the pinned sha256 and the signature
settings it was checked against.  While all of these still match, the check
is not repeated; any change to the file, its pin or its signature settings
forces a full re-hash.  The sidecar is a cache of our own check, not a trust
anchor: to force a full re-check, delete the `*.verified` files.
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from common.errors import InfraError, UserError, VerificationError
from common.hashing import sha256_file
from common.paths import atomic_write_text, shown
from kernels import debsource, hashes, listing, signature
from kernels.download import DownloadError, download, download_from
from kernels.sources import Source

NO_SIGNATURE = "no OpenPGP signature configured for this source"


@dataclass(frozen=True)
class FetchResult:
    path: Path
    sha256: str
    trust: str                          # one line, for build records
    package_version: str | None = None  # trust = "debian-package" only


def fetch_source(source: Source, *, hash_file: Path, keys_dir: Path, dl: Path,
                 offline: bool = False, progress: bool = True,
                 **download_options) -> FetchResult:
    """The verified source file.  `download_options` (timeout, retries,
    backoff) go to kernels.download.download."""
    if source.trust == "debian-package":
        return fetch_debian_package(source)
    _require_known_trust(source)
    if source.listing and not offline and hashes.pinned_sha256(hash_file, source.file) is None:
        return _pin_from_listing(source, hash_file, keys_dir, Path(dl), progress, download_options)
    pinned = hashes.require_pinned(hash_file, source.file, source.name, source.line)
    if source.signature:
        signature.check_keys_available(source.signature, keys_dir)
    dest = Path(dl) / source.file
    if offline:
        download(source.all_urls, dest, offline=True)   # raises when not cached
    cached = _reuse_cached(source, dest, pinned, hash_file, keys_dir, offline, download_options)
    if cached:
        return cached
    return _download_verified(source, dest, pinned, hash_file, keys_dir, progress,
                              download_options)


def pin_source(source: Source, hash_file: Path, dl: Path, *, keys_dir: Path,
               offline: bool = False, progress: bool = True, **download_options) -> FetchResult:
    """Download without a pin (any md5 already recorded and the signature,
    when the line names one, are still checked), then pin its sha256 with a
    comment saying who, when and from where.  An already pinned source is
    just fetched and verified."""
    if source.trust == "debian-package":
        raise UserError(f"source {source.name} of line {source.line} is trusted through the "
                        f"Debian package {source.package}; it is recorded, never pinned")
    _require_known_trust(source)
    if hashes.pinned_sha256(hash_file, source.file) or (source.listing and not offline):
        return fetch_source(source, hash_file=hash_file, keys_dir=keys_dir, dl=dl,
                            offline=offline, progress=progress, **download_options)
    if source.signature:
        signature.check_keys_available(source.signature, keys_dir)
    dest = Path(dl) / source.file
    sig = _SignatureFile(source, Path(dl), offline, download_options, refresh=not offline)
    outcome: dict = {}
    verify = _verifier(source, hash_file, keys_dir, sig, outcome, require_pin=False)
    downloaded = False
    try:
        path, origin = download_from(source.all_urls, dest, verify=verify, offline=offline,
                                     progress=progress, **download_options)
        downloaded = not offline
        if offline:
            verify(path)    # the offline path returns the cached file unchecked
        how = "taken from" if offline else "downloaded from"
        known = sorted(set(hashes.parse(hash_file).get(source.file, {})) - {"sha256"})
        matched = f"; matches the recorded {', '.join(known)}" if known else ""
        comment = f"{how} {origin}{matched}; {outcome['signature']}"
        hashes.pin(hash_file, source.file, outcome["sha256"], comment)
    except Exception:
        sig.discard_if_new()
        if downloaded:
            dest.unlink(missing_ok=True)   # never leave an unpinned download behind
        raise
    trust = f"sha256 pinned in {shown(hash_file)} just now; {outcome['signature']}"
    _write_sidecar(dest, _sidecar_key(dest, outcome["sha256"], source), trust)
    return FetchResult(dest, outcome["sha256"], trust)


def _pin_from_listing(source, hash_file, keys_dir, dl, progress, options) -> FetchResult:
    """Pin an unpinned source from its signed listing (see kernels.listing):
    the download must match the listed sha256 and every digest the hash
    file already records; only then is the sha256 pinned, with the
    listing's URL, signer and date as provenance."""
    if source.signature:
        signature.check_keys_available(source.signature, keys_dir)
    dl.mkdir(parents=True, exist_ok=True)
    listed = listing.listed_sha256(source, keys_dir=keys_dir, workdir=dl, **options)
    print(f"[fetch {source.line}] {source.file}: {listed.provenance}", flush=True)
    dest = dl / source.file
    sig = _SignatureFile(source, dl, False, options, refresh=True)
    outcome: dict = {}

    def verify(path: Path) -> None:
        outcome["sha256"] = listing.check_against_listing(path, listed, hash_file=hash_file,
                                                          file=source.file)
        outcome["signature"] = _check_signature(source, path, sig, keys_dir)

    try:
        origin = _verified_cached_copy(dest, verify)
        if origin is None:
            _, origin = download_from(source.all_urls, dest, verify=verify, progress=progress,
                                      **options)
    except Exception:
        sig.discard_if_new()
        raise
    known = sorted(set(hashes.parse(hash_file).get(source.file, {})) - {"sha256"})
    checked = f"; agrees with the recorded {', '.join(known)}" if known else ""
    hashes.pin(hash_file, source.file, outcome["sha256"],
               f"{listed.provenance}{checked}; file from {origin}; {outcome['signature']}")
    trust = (f"sha256 pinned in {shown(hash_file)} from the signed listing {listed.url} "
             f"(signer {listed.signer}, {listed.signed_on}){checked}; {outcome['signature']}")
    _write_sidecar(dest, _sidecar_key(dest, outcome["sha256"], source), trust)
    return FetchResult(dest, outcome["sha256"], trust)


def _verified_cached_copy(dest: Path, verify) -> str | None:
    """A file already in the download dir (e.g. copied there by hand) is
    used when it passes `verify`, and removed when it does not."""
    if not dest.is_file():
        return None
    try:
        verify(dest)
    except VerificationError as error:
        print(f"warning: {dest} does not match its signed listing, downloading it again: {error}",
              file=sys.stderr)
        dest.unlink()
        return None
    return f"the download dir {dest.parent}"


def _require_known_trust(source: Source) -> None:
    if source.trust != "pinned":
        raise UserError(f"source {source.name} of line {source.line}: unknown trust "
                        f"{source.trust!r} (use 'pinned' or 'debian-package')")


# ---- pinned sources ----------------------------------------------------------

def _reuse_cached(source, dest, pinned, hash_file, keys_dir, offline,
                  options) -> FetchResult | None:
    """The cached file if it still verifies.  A cached file that fails is
    removed and downloaded again (as Buildroot does), except offline."""
    sidecar_key = _sidecar_key(dest, pinned, source) if dest.is_file() else None
    if sidecar_key is None:
        _sidecar_path(dest).unlink(missing_ok=True)
        return None
    trust = _read_sidecar(dest, sidecar_key)
    if trust is None:
        try:
            trust = _verify_cached(source, dest, hash_file, keys_dir, offline, options)
        except VerificationError as error:
            if offline:
                raise
            print(f"warning: cached {dest} fails verification, downloading it again: {error}",
                  file=sys.stderr)
            dest.unlink(missing_ok=True)
            _sidecar_path(dest).unlink(missing_ok=True)
            return None
        _write_sidecar(dest, sidecar_key, trust)
    return FetchResult(dest, pinned, trust)


def _verify_cached(source, dest, hash_file, keys_dir, offline, options) -> str:
    sig = _SignatureFile(source, dest.parent, offline, options, refresh=False)
    outcome: dict = {}
    _verifier(source, hash_file, keys_dir, sig, outcome, require_pin=True)(dest)
    return _pinned_trust(hash_file, outcome["signature"])


def _download_verified(source, dest, pinned, hash_file, keys_dir, progress, options) -> FetchResult:
    sig = _SignatureFile(source, dest.parent, False, options, refresh=True)
    outcome: dict = {}
    verify = _verifier(source, hash_file, keys_dir, sig, outcome, require_pin=True)
    try:
        download(source.all_urls, dest, verify=verify, progress=progress, **options)
    except DownloadError as error:
        sig.discard_if_new()
        if sig.unreachable:
            raise DownloadError(f"{error.message}\nand its signature could not be fetched either: "
                                f"{sig.unreachable}", error.failures) from None
        raise
    except Exception:
        sig.discard_if_new()
        raise
    trust = _pinned_trust(hash_file, outcome["signature"])
    _write_sidecar(dest, _sidecar_key(dest, pinned, source), trust)
    return FetchResult(dest, pinned, trust)


def _verifier(source, hash_file, keys_dir, sig: "_SignatureFile", outcome: dict, *, require_pin: bool):
    """The check run on a complete download before it gets its real name:
    hashes first (the pin is what trust rests on), then the signature.
    Results go into `outcome` (sha256, signature summary)."""
    def verify(path: Path) -> None:
        if require_pin:
            outcome["sha256"] = hashes.check(hash_file, path, file=source.file,
                                             source_name=source.name)
        else:
            outcome["sha256"] = hashes.check_known(hash_file, path, file=source.file)["sha256"]
        outcome["signature"] = _check_signature(source, path, sig, keys_dir)
    return verify


def _check_signature(source, path, sig: "_SignatureFile", keys_dir) -> str:
    if not source.signature:
        return NO_SIGNATURE
    return signature.verify_signature(source.signature, path, sig.path(), keys_dir,
                                      display_name=source.file)


def _pinned_trust(hash_file: Path, signature_summary: str) -> str:
    return f"sha256 pinned in {shown(hash_file)}; {signature_summary}"


# ---- signature files ---------------------------------------------------------

def signature_file_name(url: str) -> str:
    """The signature's name in the download dir: its URL's basename
    (kernel.org: linux-2.4.22.tar.sign)."""
    name = Path(unquote(urlparse(url).path)).name
    if not name:
        raise UserError(f"signature URL {url} does not end in a file name")
    return name


class _SignatureFile:
    """The source's signature file.  Fetched first, so a signature that does
    not exist refuses the source before the big download; but when its
    server cannot be reached, the tarball's mirrors are still tried (and
    named in the error if they are down too) and the signature is fetched
    again when the complete download is checked."""

    def __init__(self, source, dl: Path, offline: bool, options: dict, *, refresh: bool):
        self._args = (source, dl, offline, options)
        self._refresh = refresh
        self._path: Path | None = None
        self.is_new = False
        self.unreachable: str | None = None
        try:
            self.path()
        except DownloadError as error:      # unreachable; a missing one raised VerificationError
            self.unreachable = error.message

    def path(self) -> Path | None:
        if self._path is None:
            source, dl, offline, options = self._args
            self._path, self.is_new = _signature_file(source, dl, offline, options, refresh=self._refresh)
            self._refresh = False       # a mirror retry reuses the signature just fetched
        return self._path

    def discard_if_new(self) -> None:
        if self.is_new and self._path is not None:
            self._path.unlink(missing_ok=True)


def _signature_file(source, dl: Path, offline: bool, options: dict, *,
                    refresh: bool) -> tuple[Path | None, bool]:
    """(path of the signature file in dl, whether this call downloaded it).
    refresh: download it even when cached (it is small, and a stale one
    would fail a fresh download)."""
    sig = source.signature
    if sig is None:
        return None, False
    path = dl / signature_file_name(sig.url)
    if path.is_file() and not refresh:
        return path, False
    if offline:
        if path.is_file():
            return path, False
        raise InfraError(f"signature {path.name} of {source.file} is not in the download dir "
                         f"{dl} and offline mode is on (it comes from {sig.url})")
    try:
        download([sig.url], path, verify=_looks_like_openpgp, progress=False, **options)
    except DownloadError as error:
        if error.all_missing:
            raise VerificationError(f"{source.file}: its signature file {sig.url} does not "
                                    f"exist; a line that names a signature requires it") from None
        raise
    return path, True


def _looks_like_openpgp(path: Path) -> None:
    """A cheap sanity check (an HTML error page is not a signature); the real
    check is gpg's, over the data."""
    head = path.read_bytes()[:64]
    armored = head.lstrip().startswith(b"-----BEGIN PGP SIGNATURE-----")
    binary_packet = bool(head) and head[0] & 0x80
    if not (armored or binary_packet):
        raise VerificationError(f"{path.name} is not an OpenPGP signature "
                                f"(starts with {head[:20]!r})")


# ---- verification cache sidecar ----------------------------------------------

def _sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified")


def _sidecar_key(dest: Path, pinned_sha256: str, source: Source) -> dict:
    stat = dest.stat()
    sig = source.signature
    return {
        "file": dest.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino, "sha256": pinned_sha256,
        "signature": None if sig is None else
        {"url": sig.url, "covers": sig.covers, "keys": sorted(sig.keys),
         "accept_revoked": sig.accept_revoked},
    }


def _read_sidecar(dest: Path, key: dict) -> str | None:
    """The recorded trust summary if the sidecar matches `key`."""
    try:
        data = json.loads(_sidecar_path(dest).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    return data.get("trust")


def _write_sidecar(dest: Path, key: dict, trust: str) -> None:
    text = json.dumps({"key": key, "trust": trust}, indent=1) + "\n"
    atomic_write_text(_sidecar_path(dest), text)


# ---- Debian-packaged sources -------------------------------------------------

def fetch_debian_package(source: Source) -> FetchResult:
    """A file installed by apt, re-checked with dpkg --verify, used in place."""
    path, version = debsource.verified_installed_file(source)
    trust = (f"debian package {source.package} {version}: dpkg --verify clean for {path}; "
             f"sha256 recorded, not pinned")
    return FetchResult(path, sha256_file(path), trust, package_version=version)
