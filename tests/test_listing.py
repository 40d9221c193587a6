"""Pinning from a signed checksum listing (kernel.org's sha256sums.asc): a
loopback kernel.org, real gpg clearsignatures by test keys, real tarballs.
First through fetch_source, then through `doit line=linux-2.4.22 fetch` with
a copied configs folder pointed at the loopback server."""
import dataclasses
import hashlib
import re
import shutil

import pytest

from common.errors import VerificationError
from common.paths import configs_dir
from kernels import hashes
from kernels.fetch import fetch_source, pin_source
from kernels.sources import Listing, Source
from tests.conftest import run_doit
from tests.net_fixtures import *  # noqa: F401,F403  (file_server, gpg_keys, make_tarball, ...)

FILE = "linux-2.4.22.tar.bz2"
FAST = {"timeout": 5, "retries": 1, "backoff": 0.01}
AUTOSIGNER = "B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1"


@pytest.fixture
def tarball(tmp_path):
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    return make_tarball(upstream / FILE, {"Makefile": b"VERSION = 2\n", "README": b"2.4\n"},
                        top="linux-2.4.22")


def digests(path):
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data)


def listing_text(entries: dict[str, str]) -> bytes:
    return "".join(f"{sha}  {name}\n" for name, sha in entries.items()).encode()


class KernelOrg:
    """The loopback release folder: the tarball and a clearsigned listing."""

    def __init__(self, server, gpg_keys, tarball):
        self.server, self.keys, self.tarball = server, gpg_keys, tarball
        self.sha256, self.md5, self.size = digests(tarball)
        server.files[f"/v2.4/{FILE}"] = tarball.read_bytes()
        self.publish({FILE: self.sha256, "linux-2.4.21.tar.bz2": "ab" * 32})

    def publish(self, entries, signer=None) -> bytes:
        signed = self.keys.clearsign(signer or self.keys.good, listing_text(entries))
        self.server.files["/v2.4/sha256sums.asc"] = signed
        return signed

    @property
    def listing_url(self):
        return self.server.url("/v2.4/sha256sums.asc")

    def source(self):
        return Source(line="linux-2.4.22", name="linux", file=FILE,
                      urls=(self.server.url(f"/v2.4/{FILE}"),),
                      listing=Listing(urls=(self.listing_url,), keys=(self.keys.good,)))


@pytest.fixture
def kernel_org(file_server, gpg_keys, tarball):
    return KernelOrg(file_server, gpg_keys, tarball)


@pytest.fixture
def hash_file(tmp_path, kernel_org):
    """The md5 and size the line knows from old listings, no sha256."""
    path = tmp_path / "linux-2.4.22.hash"
    path.write_text(f"md5  {kernel_org.md5}  {FILE}\nsize  {kernel_org.size}  {FILE}\n")
    return path


def fetch(kernel_org, hash_file, tmp_path, **extra):
    return fetch_source(kernel_org.source(), hash_file=hash_file, keys_dir=kernel_org.keys.keys_dir,
                        dl=tmp_path / "dl", progress=False, **FAST, **extra)


def assert_refused_and_nothing_kept(kernel_org, hash_file, tmp_path, match: str):
    with pytest.raises(VerificationError, match=match):
        fetch(kernel_org, hash_file, tmp_path)
    assert hashes.pinned_sha256(hash_file, FILE) is None
    assert not (tmp_path / "dl" / FILE).exists()


def test_good_listing_pins_with_its_provenance(kernel_org, hash_file, tmp_path):
    result = fetch(kernel_org, hash_file, tmp_path)
    assert result.sha256 == kernel_org.sha256
    assert hashes.pinned_sha256(hash_file, FILE) == kernel_org.sha256
    text = hash_file.read_text()
    assert f"sha256 from the signed listing {kernel_org.listing_url}" in text
    assert f"clearsigned by {kernel_org.keys.good} on 20" in text
    assert "agrees with the recorded md5, size" in text
    print(text)
    # the pin now stands on its own: no listing request the second time
    before = len(kernel_org.server.requests)
    again = fetch(kernel_org, hash_file, tmp_path)
    assert again.sha256 == kernel_org.sha256
    assert [r.path for r in kernel_org.server.requests[before:]] == []


def test_doit_pin_of_a_listed_source_uses_the_listing(kernel_org, hash_file, tmp_path):
    result = pin_source(kernel_org.source(), hash_file, tmp_path / "dl",
                        keys_dir=kernel_org.keys.keys_dir, progress=False, **FAST)
    assert result.sha256 == kernel_org.sha256
    assert "signed listing" in hash_file.read_text()


def test_only_the_signed_text_counts(kernel_org, hash_file, tmp_path):
    """Lines outside the clearsigned block are not vouched for by anyone."""
    signed = kernel_org.publish({"linux-2.4.21.tar.bz2": "ab" * 32})
    forged = f"{'cd' * 32}  {FILE}\n".encode()
    kernel_org.server.files["/v2.4/sha256sums.asc"] = forged + signed + forged
    with pytest.raises(VerificationError, match=f"{FILE} is not in the signed listing"):
        fetch(kernel_org, hash_file, tmp_path)
    assert hashes.pinned_sha256(hash_file, FILE) is None


def test_listing_signed_by_another_key(kernel_org, hash_file, tmp_path):
    kernel_org.publish({FILE: kernel_org.sha256}, signer=kernel_org.keys.other)
    assert_refused_and_nothing_kept(kernel_org, hash_file, tmp_path,
                                    f"signed by key {kernel_org.keys.other}, which is not an accepted signer")


def test_listing_by_a_revoked_key(kernel_org, hash_file, tmp_path):
    kernel_org.publish({FILE: kernel_org.sha256}, signer=kernel_org.keys.revoked)
    source = kernel_org.source()
    source = dataclasses.replace(source, listing=Listing(source.listing.urls, (kernel_org.keys.revoked,)))
    with pytest.raises(VerificationError, match="revoked"):
        fetch_source(source, hash_file=hash_file, keys_dir=kernel_org.keys.keys_dir,
                     dl=tmp_path / "dl", progress=False, **FAST)


def test_tampered_listing(kernel_org, hash_file, tmp_path):
    signed = kernel_org.server.files["/v2.4/sha256sums.asc"]
    tampered = signed.replace(b"ab" * 32, b"ab" * 31 + b"ac")
    assert tampered != signed
    kernel_org.server.files["/v2.4/sha256sums.asc"] = tampered
    with pytest.raises(VerificationError, match="bad signature"):
        fetch(kernel_org, hash_file, tmp_path)
    assert hashes.pinned_sha256(hash_file, FILE) is None


def test_file_missing_from_the_listing(kernel_org, hash_file, tmp_path):
    kernel_org.publish({"linux-2.4.21.tar.bz2": "ab" * 32})
    with pytest.raises(VerificationError, match=f"{re.escape(FILE)} is not in the signed listing "
                                                f"{re.escape(kernel_org.listing_url)}"):
        fetch(kernel_org, hash_file, tmp_path)
    assert [r.path for r in kernel_org.server.requests] == ["/v2.4/sha256sums.asc"]


@pytest.mark.parametrize("algo", ["md5", "size"])
def test_listing_contradicting_a_known_digest_is_refused(kernel_org, hash_file, tmp_path, algo):
    known = {"md5": "0" * 32, "size": "29528612"}[algo]
    hash_file.write_text(re.sub(rf"^{algo} +\S+", f"{algo}  {known}", hash_file.read_text(), flags=re.M))
    with pytest.raises(VerificationError) as caught:
        fetch(kernel_org, hash_file, tmp_path)
    message = str(caught.value)
    actual = {"md5": kernel_org.md5, "size": str(kernel_org.size)}[algo]
    assert f"gives sha256 {kernel_org.sha256}" in message
    assert f"its {algo} is {actual} where {hash_file} records {algo} {known}" in message
    assert hashes.pinned_sha256(hash_file, FILE) is None
    assert not (tmp_path / "dl" / FILE).exists()


def test_tarball_not_matching_the_listed_sha256(kernel_org, hash_file, tmp_path):
    kernel_org.server.files[f"/v2.4/{FILE}"] += b"\0" * 512
    assert_refused_and_nothing_kept(kernel_org, hash_file, tmp_path,
                                    f"does not match {kernel_org.sha256}, the sha256 in the signed listing")


def test_missing_listing_key_file_is_refused_before_any_request(kernel_org, hash_file, tmp_path):
    keys = tmp_path / "no-keys"
    keys.mkdir()
    with pytest.raises(VerificationError, match=f"key file {keys}/{kernel_org.keys.good}.asc is missing"):
        fetch_source(kernel_org.source(), hash_file=hash_file, keys_dir=keys, dl=tmp_path / "dl",
                     progress=False, **FAST)
    assert kernel_org.server.requests == []


# -- the shipped autosigner key ---------------------------------------------------------

def test_shipped_autosigner_key_holds_exactly_its_fingerprint(tmp_path):
    """configs/keys/<FPR>.asc is checked after import; a copy under another
    name is refused."""
    from kernels.signature import verify_clearsigned
    keys = configs_dir() / "keys"
    assert (keys / f"{AUTOSIGNER}.asc").is_file()
    wrong = tmp_path / "keys"
    wrong.mkdir()
    other = "0" * 40
    shutil.copy(keys / f"{AUTOSIGNER}.asc", wrong / f"{other}.asc")
    with pytest.raises(VerificationError, match=f"does not hold key {other} alone.*{AUTOSIGNER}"):
        verify_clearsigned(b"-----BEGIN PGP SIGNED MESSAGE-----\n", (other,), wrong, where="probe")
    # the real file imports as exactly the autosigner (a forged clearsignature then fails)
    with pytest.raises(VerificationError, match="bad signature|no valid OpenPGP|not an accepted"):
        verify_clearsigned(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n"
                           b"-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n",
                           (AUTOSIGNER,), keys, where="probe")


# -- through doit ---------------------------------------------------------------------

@pytest.fixture
def loopback_line(isolated, kernel_org):
    """configs/ copy: linux-2.4.22's tarball and listing on the loopback
    kernel.org, the test key as the listing's signer, the fake tarball's
    md5 and size as the line's known digests."""
    configs = isolated / "configs"
    toml = configs / "lines" / "linux-2.4.22.toml"
    text = toml.read_text()
    text = re.sub(r"https://[a-z.]+kernel\.org/pub/linux/kernel/v2\.4/", kernel_org.server.url("/v2.4/"), text)
    text = text.replace(AUTOSIGNER, kernel_org.keys.good)
    toml.write_text(text)
    shutil.copy(kernel_org.keys.keys_dir / f"{kernel_org.keys.good}.asc", configs / "keys")
    hash_file = configs / "lines" / "linux-2.4.22.hash"
    hash_file.write_text(f"md5  {kernel_org.md5}  {FILE}\nsize  {kernel_org.size}  {FILE}\n")
    return hash_file


def test_doit_fetch_pins_from_the_loopback_listing(loopback_line, kernel_org):
    result = run_doit("line=linux-2.4.22", "fetch", env=None)
    assert f"{FILE}: sha256 pinned in" in result.stdout and "from the signed listing" in result.stdout
    assert hashes.pinned_sha256(loopback_line, FILE) == kernel_org.sha256
    print(loopback_line.read_text())


@pytest.mark.parametrize("case,expected", [
    ("other-signer", "signed by key {other}, which is not an accepted signer"),
    ("tampered", "bad signature"),
    ("not-listed", FILE + " is not in the signed listing"),
    ("md5-contradiction", "records md5 " + "0" * 32),
    ("size-contradiction", "records size 1"),
    ("tarball-mismatch", "does not match {sha256}, the sha256 in the signed listing"),
])
def test_doit_fetch_refuses_each_bad_case(loopback_line, kernel_org, case, expected):
    if case == "other-signer":
        kernel_org.publish({FILE: kernel_org.sha256}, signer=kernel_org.keys.other)
    elif case == "tampered":
        files = kernel_org.server.files
        files["/v2.4/sha256sums.asc"] = files["/v2.4/sha256sums.asc"].replace(b"ab" * 32, b"ba" * 32)
    elif case == "not-listed":
        kernel_org.publish({"linux-2.4.21.tar.bz2": "ab" * 32})
    elif case == "md5-contradiction":
        loopback_line.write_text(f"md5  {'0' * 32}  {FILE}\n")
    elif case == "size-contradiction":
        loopback_line.write_text(f"size  1  {FILE}\n")
    elif case == "tarball-mismatch":
        kernel_org.server.files[f"/v2.4/{FILE}"] += b"\0" * 512
    before = loopback_line.read_text()
    result = run_doit("line=linux-2.4.22", "fetch", env=None, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected.format(other=kernel_org.keys.other, sha256=kernel_org.sha256) in output, output[-2000:]
    assert "Traceback" not in output
    assert loopback_line.read_text() == before, "nothing may be pinned"
