"""Pinned digests of downloaded sources, one `.hash` file per line.

Format (as Buildroot's .hash files): one entry a line, `<algo>  <hex>  <file>`,
`#` starts a comment.  sha256 is the pin that trust rests on; an md5 (as
published by old release listings) is checked too when it is present, but it
never replaces a sha256 pin.  `size  <bytes>  <file>` records a byte count
(old digest files carry one beside the md5): checked like a digest, weak alone.
"""
import datetime
import getpass
import re
import socket
from pathlib import Path

from common.errors import UserError, VerificationError
from common.hashing import compute_digests
from common.paths import atomic_write_text

# Digest length in hex characters, per algorithm this project accepts.
ALGORITHMS = {"sha256": 64, "md5": 32}
SIZE = "size"       # a byte count, not a digest
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def line_name(hash_path: Path) -> str:
    """configs/lines/<line>.hash -> <line>."""
    return Path(hash_path).stem


def how_to_pin(hash_path: Path, source_name: str | None, line: str | None = None) -> str:
    return (f"check the file by other means, then pin it deliberately with "
            f"`doit pin line={line or line_name(hash_path)} "
            f"source={source_name or '<source name>'}`")


# ---- reading -----------------------------------------------------------------

def parse(hash_path: Path) -> dict[str, dict[str, str]]:
    """{file: {algo: lower-case hex}}.  A missing hash file holds no pins."""
    hash_path = Path(hash_path)
    if not hash_path.exists():
        return {}
    entries: dict[str, dict[str, str]] = {}
    for number, raw in enumerate(hash_path.read_text().splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if text:
            algo, digest, file = _parse_entry(text, f"{hash_path}:{number}")
            _add_entry(entries, algo, digest, file, f"{hash_path}:{number}")
    return entries


def _parse_entry(text: str, where: str) -> tuple[str, str, str]:
    fields = text.split()
    if len(fields) != 3:
        raise UserError(f"{where}: expected `<algo>  <hex>  <file>`, got {text!r}")
    algo, digest, file = fields
    if algo == SIZE:
        if not digest.isdigit():
            raise UserError(f"{where}: size of {file} must be a byte count, got {digest!r}")
        return algo, str(int(digest)), _bare(file, where)
    if algo not in ALGORITHMS:
        raise UserError(f"{where}: unknown hash algorithm {algo!r} "
                        f"(use one of: {', '.join(ALGORITHMS)})")
    if len(digest) != ALGORITHMS[algo] or not _HEX.match(digest):
        raise UserError(f"{where}: {algo} digest for {file} must be "
                        f"{ALGORITHMS[algo]} hex digits, got {digest!r}")
    return algo, digest.lower(), _bare(file, where)


def _bare(file: str, where: str) -> str:
    if "/" in file:
        raise UserError(f"{where}: {file!r} must be a bare file name (no directory)")
    return file


def _add_entry(entries: dict, algo: str, digest: str, file: str, where: str) -> None:
    known = entries.setdefault(file, {})
    if known.get(algo, digest) != digest:
        raise UserError(f"{where}: a second, different {algo} for {file} "
                        f"({known[algo]} is listed earlier)")
    known[algo] = digest


def pinned_sha256(hash_path: Path, file: str) -> str | None:
    return parse(hash_path).get(file, {}).get("sha256")


def require_pinned(hash_path: Path, file: str, source_name: str | None = None,
                   line: str | None = None) -> str:
    """The pinned sha256 of `file`, or a UserError saying how to pin it
    (`line` defaults to the hash file's name: configs/lines/<line>.hash)."""
    sha256 = pinned_sha256(hash_path, file)
    if sha256 is None:
        raise UserError(f"source {source_name or file} ({file}) is unpinned: {hash_path} has "
                        f"no sha256 for it, so it is refused; "
                        f"{how_to_pin(hash_path, source_name, line)}")
    return sha256


# ---- checking ----------------------------------------------------------------

def check_known(hash_path: Path, path: Path, *, file: str | None = None) -> dict[str, str]:
    """Compare `path` with every digest recorded for `file` (default: the
    path's name), whichever algorithms those are; no entry is no error.
    Returns the computed digests (sha256 and md5) so callers need not
    re-read the file."""
    file = file or Path(path).name
    expected = parse(hash_path).get(file, {})
    actual = compute_digests(path)
    actual[SIZE] = str(Path(path).stat().st_size)
    for algo, digest in expected.items():
        if actual[algo] != digest:
            raise VerificationError(
                f"{file}: {algo} mismatch (file checked: {path}): expected {digest} "
                f"(from {hash_path}), actual {actual[algo]}")
    return actual


def check(hash_path: Path, path: Path, *, file: str | None = None,
          source_name: str | None = None) -> str:
    """Require a sha256 pin for `file` and match it (and the md5, when one
    is recorded).  `file` is the name in the hash file; it differs from
    path.name when a download is checked under its `.part` name.
    Returns the sha256."""
    file = file or Path(path).name
    require_pinned(hash_path, file, source_name)
    return check_known(hash_path, path, file=file)["sha256"]


# ---- pinning -----------------------------------------------------------------

def pin(hash_path: Path, file: str, sha256: str, origin_comment: str) -> bool:
    """Append `sha256  <hex>  <file>` under a comment saying who pinned it,
    when (UTC) and from where (`origin_comment`, e.g. "downloaded from URL").
    Returns False when this very sha256 is already pinned (nothing written);
    a different pinned sha256 is refused: a pin is changed by a person
    editing the hash file, never by a download."""
    hash_path = Path(hash_path)
    sha256 = sha256.lower()
    if len(sha256) != 64 or not _HEX.match(sha256):
        raise UserError(f"{hash_path}: refusing to pin {file}: {sha256!r} is not a sha256")
    existing = pinned_sha256(hash_path, file)
    if existing == sha256:
        return False
    if existing is not None:
        raise UserError(f"{hash_path}: {file} is already pinned to sha256 {existing}; refusing "
                        f"to pin a different one ({sha256}). If upstream really changed the "
                        f"file, edit {hash_path} by hand after checking why.")
    text = hash_path.read_text() if hash_path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"# {file}: pinned by {_who()} on {_utc_now()}; {origin_comment}\n"
    text += f"sha256  {sha256}  {file}\n"
    atomic_write_text(hash_path, text)
    return True


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
