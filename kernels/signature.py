"""OpenPGP check of a source against its detached signature.

Each check runs gpg in a private, throw-away keyring (never ~/.gnupg) that
holds only the keys the line names, read from configs/keys/<FPR>.asc.  Trust
comes from that pinned list of full fingerprints, not from a web of trust,
hence `--trust-model always`; the signer is then matched by its full primary
fingerprint, never by a (forgeable, short) key id.

How python-gnupg reports the interesting cases (checked against gpg 2.2):
  good signature        valid=True,  key_status=None
  bad signature         valid=False, status='signature bad' (BADSIG)
  unknown signer        valid=False, status='no public key'; `fingerprint`
                        comes from ERRSIG (gpg >= 2.2.7), else only key_id
  expired key           valid=False, key_status='signing key has expired'
                        (EXPKEYSIG; status is then 'signature valid')
  revoked key           valid=False, key_status='signing key was revoked'
                        (REVKEYSIG: the maths is good, the key is not)
  expired signature     status='signature expired' (EXPSIG)
VALIDSIG (which sets `fingerprint` and `pubkey_fingerprint`) is only sent
when the signature itself is mathematically good, so "good signature by a
revoked key" is: key_status revoked and pubkey_fingerprint set.
"""
import bz2
import gzip
import io
import lzma
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import gnupg

from common.errors import InfraError, UserError, VerificationError
from kernels.sources import Signature

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
KEY_REVOKED = "signing key was revoked"
KEY_EXPIRED = "signing key has expired"
_MAGIC_OPENERS = (
    (b"\x1f\x8b", gzip.open),
    (b"BZh", bz2.open),
    (b"\xfd7zXZ\x00", lzma.open),
)


def key_path(keys_dir: Path, fingerprint: str) -> Path:
    return Path(keys_dir) / f"{fingerprint}.asc"


def check_keys_available(sig: Signature, keys_dir: Path) -> None:
    """Every accepted signer must have its key file: checked before any
    download, since no download can fix a missing key."""
    check_key_files(sig.keys, keys_dir, f"signature {sig.url}")


def check_key_files(fingerprints: tuple[str, ...], keys_dir: Path, what: str) -> None:
    if not fingerprints:
        raise UserError(f"{what}: no accepted signer keys are listed")
    for fingerprint in fingerprints:
        if not _FINGERPRINT.match(fingerprint):
            raise UserError(f"{what}: {fingerprint!r} is not a full fingerprint "
                            f"(40 upper-case hex digits, no spaces)")
        if not key_path(keys_dir, fingerprint).is_file():
            raise VerificationError(
                f"{what}: key file {key_path(keys_dir, fingerprint)} is missing; "
                f"export key {fingerprint} there (gpg --armor --export {fingerprint})")


def verify_signature(sig: Signature, data_path: Path, sig_path: Path, keys_dir: Path,
                     *, display_name: str | None = None) -> str:
    """Check `sig_path` over `data_path` (or over the .tar inside it when
    sig.covers == "tar").  Returns a one-line summary; raises
    VerificationError on anything but a good signature by a listed key
    (a revoked listed key is accepted with a WARNING only when
    sig.accept_revoked: the caller still requires the sha256 pin).
    `display_name` names the source in messages (data_path may be a .part)."""
    name = display_name or Path(data_path).name
    where = f"{name} (signature {sig.url}, file {sig_path})"
    check_keys_available(sig, keys_dir)
    if sig.covers not in ("file", "tar"):
        raise UserError(f"{where}: signature covers must be 'file' or 'tar', not {sig.covers!r}")
    with tempfile.TemporaryDirectory(prefix="ltsp-gpg-") as home:
        gpg = _private_gpg(home)
        _import_listed_keys(gpg, sig.keys, keys_dir, where)
        result = _run_verify(gpg, sig, Path(data_path), Path(sig_path), where)
    return _judge(result, sig.keys, sig.accept_revoked, where)


@dataclass(frozen=True)
class ClearsignedText:
    """What a good clearsignature vouches for: the signed text only (never
    what a file carries around the signed block), its signer, its date."""
    text: str
    signer: str
    signed_on: str      # YYYY-MM-DD of the signature


def verify_clearsigned(data: bytes, fingerprints: tuple[str, ...], keys_dir: Path,
                       *, where: str) -> ClearsignedText:
    """Check a clearsigned message (kernel.org's sha256sums.asc) in a private
    keyring holding only the listed keys, and return the text gpg says the
    signature covers.  Anything but a good signature by a listed, unrevoked,
    unexpired key raises VerificationError."""
    check_key_files(fingerprints, keys_dir, where)
    if b"-----BEGIN PGP SIGNED MESSAGE-----" not in data:
        raise VerificationError(f"{where}: not a clearsigned OpenPGP message "
                                f"(starts with {data[:30]!r})")
    with tempfile.TemporaryDirectory(prefix="ltsp-gpg-") as home:
        gpg = _private_gpg(home)
        _import_listed_keys(gpg, fingerprints, keys_dir, where)
        result = gpg.decrypt(data)      # a clearsigned message: gpg prints the signed text
    _judge(result, fingerprints, False, where)
    signer = (result.pubkey_fingerprint or result.fingerprint).upper()
    return ClearsignedText(text=result.data.decode("utf-8", "replace"), signer=signer,
                           signed_on=result.creation_date or "unknown date")


def _private_gpg(home: str) -> gnupg.GPG:
    try:
        return gnupg.GPG(gnupghome=home, options=[
            "--trust-model", "always",      # trust = the pinned fingerprint list
            "--no-autostart",               # verification needs no gpg-agent
            "--no-auto-key-retrieve",       # never fetch keys from the network
        ])
    except (OSError, ValueError) as error:
        raise InfraError(f"cannot run gpg (install the gnupg package): {error}") from None


def _import_listed_keys(gpg: gnupg.GPG, fingerprints: tuple[str, ...], keys_dir: Path,
                        where: str) -> None:
    """Import each listed key file and make sure it holds that key and
    nothing else: a file named by one fingerprint that carries another key
    (or a second one) is refused, never used."""
    for fingerprint in fingerprints:
        path = key_path(keys_dir, fingerprint)
        imported = set(gpg.import_keys(path.read_bytes()).fingerprints or [])
        if imported != {fingerprint}:
            found = ", ".join(sorted(imported)) or "no usable key"
            raise VerificationError(f"{where}: key file {path} does not hold key {fingerprint} "
                                    f"alone, as its name says (it holds: {found})")


def _run_verify(gpg: gnupg.GPG, sig: Signature, data_path: Path, sig_path: Path,
                where: str) -> gnupg.Verify:
    """Stream the signed bytes into gpg's stdin: `--verify SIG -` makes gpg
    read the data from there, so a 1 GB .tar is never in memory or on disk."""
    if not sig_path.is_file():
        raise VerificationError(f"{where}: the signature file is missing")
    with _open_signed_bytes(data_path, sig.covers, where) as stream:
        try:
            return gpg.verify_file(stream, extra_args=[str(sig_path), "-"])
        except BrokenPipeError:
            pass
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
            raise VerificationError(f"{where}: cannot decompress {data_path}: {error}") from None
    # gpg stopped reading the data: it rejected the signature file before
    # looking at the data.  Ask it why, with no data; never accept this path.
    reason = _describe(gpg.verify_file(io.BytesIO(b""), extra_args=[str(sig_path), "-"]))
    raise VerificationError(f"{where}: unusable signature: {reason}")


def _open_signed_bytes(data_path: Path, covers: str, where: str):
    """The file itself, or the .tar inside it (detected by magic bytes: a
    download is checked under its .part name)."""
    if covers == "file":
        return open(data_path, "rb")
    with open(data_path, "rb") as probe:
        head = probe.read(6)
    for magic, opener in _MAGIC_OPENERS:
        if head.startswith(magic):
            return opener(data_path, "rb")
    if _looks_like_tar(data_path):
        return open(data_path, "rb")
    raise VerificationError(f"{where}: {data_path} is not a .tar, .tar.gz, .tar.bz2 or .tar.xz, "
                            f"but the signature covers the uncompressed tar")


def _looks_like_tar(path: Path) -> bool:
    with open(path, "rb") as stream:
        stream.seek(257)
        return stream.read(5) == b"ustar"


def _judge(result: gnupg.Verify, keys: tuple[str, ...], accept_revoked: bool, where: str) -> str:
    signer = (result.pubkey_fingerprint or result.fingerprint or "").upper()
    if signer and signer not in keys:
        raise VerificationError(f"{where}: signed by key {signer}, which is not an accepted "
                                f"signer ({', '.join(keys)})")
    if result.valid and signer:
        return f"signature: good by {signer}"
    if result.key_status == KEY_REVOKED and result.pubkey_fingerprint:
        return _revoked(signer, accept_revoked, where)
    if result.key_status == KEY_EXPIRED:
        raise VerificationError(f"{where}: signed by key {signer}, which has expired")
    if result.status == "no public key":
        raise VerificationError(f"{where}: signed by key id {result.key_id}, which is not an "
                                f"accepted signer ({', '.join(keys)})")
    raise VerificationError(f"{where}: bad signature: {_describe(result)}")


def _revoked(signer: str, accept_revoked: bool, where: str) -> str:
    if not accept_revoked:
        raise VerificationError(f"{where}: signed by key {signer}, which has been revoked "
                                f"(set accept_revoked only if the sha256 pin was checked by "
                                f"other means)")
    return (f"signature: WARNING: good signature by REVOKED key {signer}; it proves nothing "
            f"on its own, trust rests on the sha256 pin")


def _describe(result: gnupg.Verify) -> str:
    problems = "; ".join(problem.get("status", "?") for problem in result.problems)
    text = result.key_status or result.status or problems or "gpg gave no verdict"
    gpg_lines = [line for line in (result.stderr or "").splitlines()
                 if line.startswith("gpg:")]
    return text + (f" ({' '.join(gpg_lines)[:300]})" if gpg_lines else "")
