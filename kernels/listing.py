"""A source's sha256 from a signed checksum listing: no trust on first use.

kernel.org publishes in every release folder a `sha256sums.asc`, clearsigned
by the "Kernel.org checksum autosigner".  For a source with no sha256 pin
whose line names such a listing, the listing is downloaded, its
clearsignature checked in a private keyring against the listed fingerprints,
and the file's sha256 read from the text gpg says the signature covers (text
around the signed block is ignored).  The download must then match that
sha256 and every other digest the line records for the file (an md5 or a
size from old release listings): a listing that contradicts a historic
digest is refused with both digests named.  Only then is the sha256 pinned,
with the listing's URL, signer and signature date as its provenance.
"""
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.errors import VerificationError
from common.hashing import compute_digests
from kernels import hashes, signature
from kernels.download import DownloadError, download_from
from kernels.sources import Source

# `<sha256>  <file>` (sha256sum's text mode) or `<sha256> *<file>` (binary mode)
_ENTRY = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")


@dataclass(frozen=True)
class ListedSha256:
    sha256: str
    url: str            # the listing it came from
    signer: str         # full fingerprint of the listing's signer
    signed_on: str      # the signature's date

    @property
    def provenance(self) -> str:
        return (f"sha256 from the signed listing {self.url} (clearsigned by {self.signer} "
                f"on {self.signed_on})")


def listed_sha256(source: Source, *, keys_dir: Path, workdir: Path,
                  **download_options) -> ListedSha256:
    """Download the source's listing, verify it, and return the sha256 it
    gives for source.file."""
    listing = source.listing
    signature.check_key_files(listing.keys, keys_dir, f"listing of {source.file}")
    with tempfile.TemporaryDirectory(prefix=".listing-", dir=workdir) as scratch:
        target = Path(scratch) / "listing.asc"
        try:
            path, url = download_from(listing.urls, target, progress=False, **download_options)
        except DownloadError as error:
            if error.all_missing:
                raise VerificationError(f"{source.file}: its signed listing is missing at every "
                                        f"URL ({', '.join(listing.urls)})") from None
            raise
        data = path.read_bytes()
    verified = signature.verify_clearsigned(data, listing.keys, keys_dir,
                                            where=f"listing {url} (for {source.file})")
    sha256 = parse_listing(verified.text).get(source.file)
    if sha256 is None:
        raise VerificationError(f"{source.file} is not in the signed listing {url}: the "
                                f"listing cannot vouch for it (pin it by other means)")
    return ListedSha256(sha256=sha256, url=url, signer=verified.signer,
                        signed_on=verified.signed_on)


def parse_listing(text: str) -> dict[str, str]:
    """{file: sha256} from sha256sum-style lines; other lines are ignored."""
    entries = {}
    for line in text.splitlines():
        match = _ENTRY.match(line.strip())
        if match:
            entries[match.group(2)] = match.group(1).lower()
    return entries


def check_against_listing(path: Path, listed: ListedSha256, *, hash_file: Path,
                          file: str) -> str:
    """The downloaded file must have the listed sha256, then agree with every
    other digest the hash file records (md5, size).  Returns the sha256."""
    actual = compute_digests(path)
    actual[hashes.SIZE] = str(Path(path).stat().st_size)
    if actual["sha256"] != listed.sha256:
        raise VerificationError(f"{file}: sha256 {actual['sha256']} of the download does not "
                                f"match {listed.sha256}, the sha256 in the signed listing "
                                f"{listed.url}")
    for algo, known in hashes.parse(hash_file).get(file, {}).items():
        if actual[algo] != known:
            raise VerificationError(
                f"{file}: the signed listing {listed.url} gives sha256 {listed.sha256}, and the "
                f"download has it, but its {algo} is {actual[algo]} where {hash_file} records "
                f"{algo} {known}: the listing contradicts the known digest, refused")
    return actual["sha256"]
