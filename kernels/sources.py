"""The data model of a line's sources, shared by the matrix loader and the
fetch/verify code.  Values come from configs/lines/<line>.toml."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Signature:
    """A detached OpenPGP signature published beside a source."""

    url: str
    # "file": the signature covers the downloaded file itself;
    # "tar": it covers the decompressed .tar inside a .tar.{gz,bz2,xz}
    # (kernel.org's current .tar.sign style).
    covers: str
    # Accepted signers, full 40-hex fingerprints (upper case, no spaces);
    # each must have configs/keys/<FPR>.asc.
    keys: tuple[str, ...]
    # A good signature by a revoked key is then a warning, never trust on
    # its own: the sha256 pin is still required.
    accept_revoked: bool = False


@dataclass(frozen=True)
class Listing:
    """A clearsigned checksum listing published for a release folder
    (kernel.org's sha256sums.asc).  An unpinned source takes its sha256 from
    the verified text of the listing and is then pinned with that
    provenance: no trust on first use."""

    urls: tuple[str, ...]           # the listing itself, primary first
    # Accepted signers of the listing, full fingerprints as in Signature.
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    line: str
    name: str                       # e.g. "linux", "openmosix"
    file: str                       # file name in the download dir
    urls: tuple[str, ...] = ()      # primary first, then mirrors
    backup: tuple[str, ...] = ()    # backup sites, tried last
    signature: Signature | None = None
    listing: Listing | None = None
    # "pinned": sha256 from configs/lines/<line>.hash is required.
    # "debian-package": a file installed by an apt package; apt verified it,
    # `dpkg --verify` re-checks it; its sha256 is recorded, not pinned.
    trust: str = "pinned"
    package: str | None = None
    path: str | None = None
    # "kernel": the tree to unpack; "patch": applied with patch -p1 after
    # unpacking (compressed or not); "tools": user-space sources.
    role: str = "kernel"
    notes: str = field(default="", compare=False)

    @property
    def all_urls(self) -> tuple[str, ...]:
        return self.urls + self.backup
