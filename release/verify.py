"""What a site runs on a downloaded release: the signature over SHA256SUMS
by the release key, every file against its sum, the manifest against the
sums, and no file the sums do not cover."""
import json
from pathlib import Path

from common.errors import VerificationError
from common.hashing import sha256_file
from kernels.signature import verify_signature
from kernels.sources import Signature

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
MANIFEST = "manifest.json"


def verify_release(directory: Path, fingerprint: str, keys_dir: Path) -> str:
    directory = directory.resolve()
    for needed in (SUMS, SIGNATURE, MANIFEST):
        if not (directory / needed).is_file():
            raise VerificationError(f"{directory}: {needed} is missing")
    signature = Signature(url=str(directory / SIGNATURE), covers="file", keys=(fingerprint,))
    summary = verify_signature(signature, directory / SUMS, directory / SIGNATURE, keys_dir)
    sums = _read_sums(directory / SUMS)
    for name, expected in sums.items():
        path = directory / name
        if not path.is_file():
            raise VerificationError(f"{directory}: {name} is listed in {SUMS} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise VerificationError(f"{path}: sha256 {actual} does not match {SUMS} ({expected})")
    _check_manifest(directory, sums)
    listed = set(sums) | {SUMS, SIGNATURE}
    extra = sorted(p.name for p in directory.iterdir() if p.name not in listed)
    if extra:
        raise VerificationError(f"{directory}: files not covered by {SUMS}: {', '.join(extra)}")
    return f"{directory}: {len(sums)} files verified; {summary}"


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        digest, _, name = text.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            raise VerificationError(f"{path}:{number}: not a sha256sum line: {text!r}")
        sums[name] = digest
    return sums


def _check_manifest(directory: Path, sums: dict[str, str]) -> None:
    if MANIFEST not in sums:
        raise VerificationError(f"{directory}: {MANIFEST} is not covered by {SUMS}")
    manifest = json.loads((directory / MANIFEST).read_text())
    packaged = {entry["package"]: entry["sha256"] for entry in manifest["packages"]}
    for name, digest in packaged.items():
        if sums.get(name) != digest:
            raise VerificationError(f"{directory}: {MANIFEST} and {SUMS} disagree about {name}")
    unlisted = sorted(set(sums) - set(packaged) - {MANIFEST})
    if unlisted:
        raise VerificationError(f"{directory}: packages missing from {MANIFEST}: {', '.join(unlisted)}")
