"""fetch_source / pin_source end to end: loopback HTTP, real gpg, real tarballs."""
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from common.errors import InfraError, UserError, VerificationError
from kernels import hashes
from kernels.fetch import fetch_source, pin_source
from kernels.sources import Signature, Source
from tests.net_fixtures import *  # noqa: F401,F403  (file_server, gpg_keys, make_tarball, ...)

LINE = "testline"
FILE = "pkg-1.0.tar.xz"
FAST = {"timeout": 5, "retries": 1, "backoff": 0.01}


@pytest.fixture
def tarball(tmp_path):
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    return make_tarball(upstream / FILE, {"Makefile": b"all:\n", "README": b"a tiny kernel\n"})


@pytest.fixture
def dl(tmp_path):
    return tmp_path / "dl"


@pytest.fixture
def hash_file(tmp_path):
    path = tmp_path / "lines" / f"{LINE}.hash"
    path.parent.mkdir()
    path.write_text("# test pins\n")
    return path


@pytest.fixture
def served(file_server, tarball):
    """The tarball on the server; its signature by the good key beside it."""
    file_server.files[f"/pub/{FILE}"] = tarball.read_bytes()
    return file_server


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pin_by_hand(hash_file, path):
    hash_file.write_text(hash_file.read_text() + f"sha256  {sha256_of(path)}  {FILE}\n")


def source_for(server, *, signature=None, urls=None, backup=()):
    return Source(line=LINE, name="linux", file=FILE,
                  urls=tuple(urls or [server.url(f"/pub/{FILE}")]), backup=tuple(backup),
                  signature=signature)


def tar_signature(server, gpg_keys, tarball, signer, *, accept_revoked=False, keys=None):
    """Publish a kernel.org-style .tar.sign (over the uncompressed tar)."""
    sign_path = tarball.with_name("pkg-1.0.tar.sign")
    gpg_keys.sign(signer, uncompressed_tar_bytes(tarball), sign_path)
    server.files["/pub/pkg-1.0.tar.sign"] = sign_path.read_bytes()
    return Signature(url=server.url("/pub/pkg-1.0.tar.sign"), covers="tar",
                     keys=tuple(keys or [signer]), accept_revoked=accept_revoked)


def run_fetch(source, hash_file, gpg_keys, dl, **options):
    return fetch_source(source, hash_file=hash_file, keys_dir=gpg_keys.keys_dir, dl=dl,
                        progress=False, **FAST, **options)


# ---- pinned sources -------------------------------------------------------------

def test_good_fetch_with_signature(served, gpg_keys, tarball, hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.good)
    pin_by_hand(hash_file, tarball)
    result = run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert result.path == dl / FILE and result.path.read_bytes() == tarball.read_bytes()
    assert result.sha256 == sha256_of(tarball)
    assert f"sha256 pinned in {hash_file}" in result.trust
    assert f"signature: good by {gpg_keys.good}" in result.trust
    assert sorted(os.listdir(dl)) == sorted([FILE, "pkg-1.0.tar.sign", f"{FILE}.verified"])


def test_unpinned_source_is_refused_before_any_request(served, gpg_keys, tarball, hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.good)
    with pytest.raises(UserError) as error:
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert f"doit pin line={LINE} source=linux" in str(error.value)
    assert "unpinned" in str(error.value) and str(hash_file) in str(error.value)
    assert served.request_count == 0
    assert not dl.exists()


def test_pin_source_records_sha256_and_comment_then_fetch_succeeds(served, gpg_keys, tarball,
                                                                   hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.good)
    source = source_for(served, signature=sig)
    pinned = pin_source(source, hash_file, dl, keys_dir=gpg_keys.keys_dir, progress=False, **FAST)
    assert pinned.sha256 == sha256_of(tarball)
    assert hashes.pinned_sha256(hash_file, FILE) == sha256_of(tarball)
    comment = [line for line in hash_file.read_text().splitlines() if "pinned by" in line][0]
    assert "@" in comment and served.url(f"/pub/{FILE}") in comment and gpg_keys.good in comment
    result = run_fetch(source, hash_file, gpg_keys, dl)
    assert result.sha256 == pinned.sha256 and "sha256 pinned" in result.trust


def test_pin_source_checks_a_recorded_md5(served, gpg_keys, hash_file, dl):
    hash_file.write_text(f"md5  {'0' * 32}  {FILE}\n")   # as from an old release listing
    with pytest.raises(VerificationError, match="md5 mismatch"):
        pin_source(source_for(served), hash_file, dl, keys_dir=gpg_keys.keys_dir,
                   progress=False, **FAST)
    assert hashes.pinned_sha256(hash_file, FILE) is None
    assert list(dl.iterdir()) == []


def test_pin_source_with_historic_md5_and_size(served, gpg_keys, tarball, hash_file, dl):
    """As openMosix's Gentoo digests: a download matching both md5 and size
    may be pinned, and the pin says what it was checked against."""
    data = tarball.read_bytes()
    hash_file.write_text(f"md5  {hashlib.md5(data).hexdigest()}  {FILE}\nsize  {len(data)}  {FILE}\n")
    pinned = pin_source(source_for(served), hash_file, dl, keys_dir=gpg_keys.keys_dir,
                        progress=False, **FAST)
    assert pinned.sha256 == sha256_of(tarball)
    assert "matches the recorded md5, size" in hash_file.read_text()


@pytest.mark.parametrize("wrong", ["md5", "size"])
def test_pin_source_refuses_a_download_failing_a_historic_digest(served, gpg_keys, tarball, hash_file,
                                                                 dl, wrong):
    data = tarball.read_bytes()
    md5 = "0" * 32 if wrong == "md5" else hashlib.md5(data).hexdigest()
    size = len(data) + 1 if wrong == "size" else len(data)
    hash_file.write_text(f"md5  {md5}  {FILE}\nsize  {size}  {FILE}\n")
    with pytest.raises(VerificationError, match=f"{wrong} mismatch .*expected {md5 if wrong == 'md5' else size}"):
        pin_source(source_for(served), hash_file, dl, keys_dir=gpg_keys.keys_dir,
                   progress=False, **FAST)
    assert hashes.pinned_sha256(hash_file, FILE) is None


def test_pin_source_refuses_debian_package_sources(hash_file, dl, gpg_keys):
    source = Source(line=LINE, name="linux", file="x.tar.xz", trust="debian-package",
                    package="linux-source-6.1", path="/usr/src/linux-source-6.1.tar.xz")
    with pytest.raises(UserError, match="never pinned"):
        pin_source(source, hash_file, dl, keys_dir=gpg_keys.keys_dir)


def test_hash_mismatch_leaves_nothing(served, gpg_keys, tarball, hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.good)
    hash_file.write_text(f"sha256  {'ab' * 32}  {FILE}\n")
    with pytest.raises(VerificationError) as error:
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert "sha256 mismatch" in str(error.value) and str(hash_file) in str(error.value)
    assert list(dl.iterdir()) == []                     # not even the signature file


def test_missing_signature_file_is_a_verification_error(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    sig = Signature(url=served.url("/pub/pkg-1.0.tar.sign"), covers="tar", keys=(gpg_keys.good,))
    with pytest.raises(VerificationError) as error:
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert served.url("/pub/pkg-1.0.tar.sign") in str(error.value)
    assert served.requests_for(f"/pub/{FILE}") == []    # refused before the big download
    assert list(dl.iterdir()) == []


def test_bad_signature_leaves_nothing(served, gpg_keys, tarball, hash_file, dl):
    other = make_tarball(tarball.with_name("other.tar.xz"), {"Makefile": b"evil:\n"})
    sig = tar_signature(served, gpg_keys, other, gpg_keys.good)   # signs other content
    pin_by_hand(hash_file, tarball)
    with pytest.raises(VerificationError) as error:
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert "bad signature" in str(error.value) and FILE in str(error.value)
    assert list(dl.iterdir()) == []


def test_signature_by_a_wrong_key(served, gpg_keys, tarball, hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.other, keys=[gpg_keys.good])
    pin_by_hand(hash_file, tarball)
    with pytest.raises(VerificationError, match=gpg_keys.other):
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert list(dl.iterdir()) == []


def test_revoked_key_without_accept_revoked_fails(served, gpg_keys, tarball, hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.revoked)
    pin_by_hand(hash_file, tarball)
    with pytest.raises(VerificationError, match="revoked"):
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)
    assert list(dl.iterdir()) == []


def test_accepted_revoked_key_warns_and_still_requires_the_pin(served, gpg_keys, tarball,
                                                                hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.revoked, accept_revoked=True)
    source = source_for(served, signature=sig)
    with pytest.raises(UserError, match="unpinned"):
        run_fetch(source, hash_file, gpg_keys, dl)
    assert served.request_count == 0
    hash_file.write_text(f"sha256  {'ab' * 32}  {FILE}\n")   # a wrong pin still fails
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        run_fetch(source, hash_file, gpg_keys, dl)
    hash_file.write_text("")
    pin_by_hand(hash_file, tarball)
    result = run_fetch(source, hash_file, gpg_keys, dl)
    assert "WARNING" in result.trust and gpg_keys.revoked in result.trust
    assert "sha256 pinned" in result.trust


def test_expired_key_fails(served, gpg_keys, tarball, hash_file, dl):
    sig = tar_signature(served, gpg_keys, tarball, gpg_keys.expired)
    pin_by_hand(hash_file, tarball)
    with pytest.raises(VerificationError, match="expired"):
        run_fetch(source_for(served, signature=sig), hash_file, gpg_keys, dl)


def test_every_mirror_down_names_the_tarball_urls_not_only_the_signature(gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    sig = Signature(url=closed_port_url("/pub/pkg-1.0.tar.sign"), covers="tar", keys=(gpg_keys.good,))
    mirrors = [closed_port_url(f"/mirror{n}/{FILE}") for n in (1, 2)]
    source = Source(line=LINE, name="linux", file=FILE, urls=tuple(mirrors), signature=sig)
    with pytest.raises(InfraError) as error:
        run_fetch(source, hash_file, gpg_keys, dl)
    message = str(error.value)
    assert all(url in message for url in mirrors) and sig.url in message, message
    assert message.count("infrastructure error") == 1, message       # the kind once, not wrapped twice
    assert not dl.exists() or list(dl.iterdir()) == []


def test_file_url_mirror_after_a_404(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    source = source_for(served, urls=[served.url(f"/gone/{FILE}")], backup=[tarball.as_uri()])
    result = run_fetch(source, hash_file, gpg_keys, dl)
    assert result.path.read_bytes() == tarball.read_bytes()
    assert result.trust.endswith("no OpenPGP signature configured for this source")


# ---- the cache ---------------------------------------------------------------------

def test_cached_fetch_sends_no_request_and_does_not_rehash(served, gpg_keys, tarball, hash_file,
                                                          dl, monkeypatch):
    pin_by_hand(hash_file, tarball)
    source = source_for(served, signature=tar_signature(served, gpg_keys, tarball, gpg_keys.good))
    first = run_fetch(source, hash_file, gpg_keys, dl)
    count = served.request_count

    def no_hashing(*args, **kwargs):
        raise AssertionError("a cached, verified file was hashed again")
    monkeypatch.setattr(hashes, "compute_digests", no_hashing)
    again = run_fetch(source, hash_file, gpg_keys, dl)
    assert again == first and served.request_count == count


def test_cached_file_changed_in_place_is_caught_and_downloaded_again(served, gpg_keys, tarball,
                                                                     hash_file, dl):
    pin_by_hand(hash_file, tarball)
    source = source_for(served)
    path = run_fetch(source, hash_file, gpg_keys, dl).path
    stat = path.stat()
    path.write_bytes(b"X" * stat.st_size)                      # same size...
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))    # ...and same mtime
    result = run_fetch(source, hash_file, gpg_keys, dl)
    assert result.path.read_bytes() == tarball.read_bytes()
    assert len(served.requests_for(f"/pub/{FILE}")) == 2


def test_cache_sidecar_names_what_was_checked(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    run_fetch(source_for(served), hash_file, gpg_keys, dl)
    data = json.loads((dl / f"{FILE}.verified").read_text())
    assert data["key"]["sha256"] == sha256_of(tarball)
    assert data["key"]["size"] == tarball.stat().st_size
    assert "sha256 pinned" in data["trust"]


def test_a_new_pin_invalidates_the_cache(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    source = source_for(served)
    run_fetch(source, hash_file, gpg_keys, dl)
    hash_file.write_text(f"sha256  {'ab' * 32}  {FILE}\n")
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        run_fetch(source, hash_file, gpg_keys, dl)
    assert list(dl.iterdir()) == []


def test_offline_with_a_cached_verified_file_sends_nothing(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    source = source_for(served, signature=tar_signature(served, gpg_keys, tarball, gpg_keys.good))
    run_fetch(source, hash_file, gpg_keys, dl)
    (dl / f"{FILE}.verified").unlink()        # force the full re-check, offline
    count = served.request_count
    result = run_fetch(source, hash_file, gpg_keys, dl, offline=True)
    assert result.sha256 == sha256_of(tarball) and gpg_keys.good in result.trust
    assert served.request_count == count


def test_offline_tampered_cache_is_refused_and_kept(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    source = source_for(served)
    path = run_fetch(source, hash_file, gpg_keys, dl).path
    path.write_bytes(b"tampered")
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        run_fetch(source, hash_file, gpg_keys, dl, offline=True)


def test_offline_without_cached_file(served, gpg_keys, tarball, hash_file, dl):
    pin_by_hand(hash_file, tarball)
    with pytest.raises(InfraError) as error:
        run_fetch(source_for(served), hash_file, gpg_keys, dl, offline=True)
    assert f"{FILE} is not in the download dir" in str(error.value)
    assert "offline" in str(error.value)
    assert served.request_count == 0


# ---- Debian-packaged sources ---------------------------------------------------------

def _installed(package):
    return subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0


@pytest.mark.skipif(not _installed("linux-source-6.1"),
                    reason="package linux-source-6.1 is not installed (dpkg -s fails)")
def test_debian_package_trust(gpg_keys, hash_file, dl):
    source = Source(line="linux-6.1", name="linux", file="linux-source-6.1.tar.xz",
                    trust="debian-package", package="linux-source-6.1",
                    path="/usr/src/linux-source-6.1.tar.xz")
    result = run_fetch(source, hash_file, gpg_keys, dl)
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "linux-source-6.1"],
                             capture_output=True, text=True).stdout
    assert result.path == Path("/usr/src/linux-source-6.1.tar.xz")
    assert result.package_version == version
    assert len(result.sha256) == 64
    assert f"debian package linux-source-6.1 {version}" in result.trust
    assert "dpkg --verify clean" in result.trust
    assert not dl.exists()                                       # used in place, not copied


def test_debian_package_not_installed_is_an_infra_error(gpg_keys, hash_file, dl):
    source = Source(line=LINE, name="linux", file="x.tar.xz", trust="debian-package",
                    package="ltsp-mosix-no-such-package", path="/usr/src/x.tar.xz")
    with pytest.raises(InfraError, match="ltsp-mosix-no-such-package"):
        run_fetch(source, hash_file, gpg_keys, dl)


def test_debian_package_without_path_is_a_user_error(gpg_keys, hash_file, dl):
    source = Source(line=LINE, name="linux", file="x.tar.xz", trust="debian-package")
    with pytest.raises(UserError, match="needs both `package` and `path`"):
        fetch_source(source, hash_file=hash_file, keys_dir=gpg_keys.keys_dir, dl=dl)
