"""OpenPGP checks with real keys made by gpg (see tests/net_fixtures.py)."""
import os
import shutil

import pytest

from common.errors import VerificationError
from kernels.signature import verify_signature
from kernels.sources import Signature
from tests.net_fixtures import *  # noqa: F401,F403  (gpg_keys, make_tarball, ...)

SIG_URL = "https://example.org/pkg.sign"
DATA = b"the signed source\n" * 1000


def signature(keys, covers="file", accept_revoked=False):
    return Signature(url=SIG_URL, covers=covers, keys=tuple(keys), accept_revoked=accept_revoked)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "pkg-1.0.tar"
    path.write_bytes(DATA)
    return path


def test_good_signature(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.good, DATA, tmp_path / "pkg.sign")
    summary = verify_signature(signature([gpg_keys.good]), data_file, sig_path, gpg_keys.keys_dir)
    assert summary == f"signature: good by {gpg_keys.good}"


def test_one_of_several_accepted_signers(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.other, DATA, tmp_path / "pkg.sign")
    summary = verify_signature(signature([gpg_keys.good, gpg_keys.other]), data_file, sig_path,
                               gpg_keys.keys_dir)
    assert gpg_keys.other in summary


def test_bad_signature(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.good, DATA + b"changed", tmp_path / "pkg.sign")
    with pytest.raises(VerificationError) as error:
        verify_signature(signature([gpg_keys.good]), data_file, sig_path, gpg_keys.keys_dir)
    message = str(error.value)
    assert "bad signature" in message
    assert data_file.name in message and SIG_URL in message


def test_signature_by_a_key_not_listed_names_its_fingerprint(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.other, DATA, tmp_path / "pkg.sign")
    with pytest.raises(VerificationError) as error:
        verify_signature(signature([gpg_keys.good]), data_file, sig_path, gpg_keys.keys_dir)
    assert f"signed by key {gpg_keys.other}, which is not an accepted signer" in str(error.value)


def test_missing_key_file_names_the_expected_path(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.good, DATA, tmp_path / "pkg.sign")
    empty_keys = tmp_path / "keys"
    empty_keys.mkdir()
    with pytest.raises(VerificationError) as error:
        verify_signature(signature([gpg_keys.good]), data_file, sig_path, empty_keys)
    assert str(empty_keys / f"{gpg_keys.good}.asc") in str(error.value)


def test_key_file_holding_another_key_is_refused(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.good, DATA, tmp_path / "pkg.sign")
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(gpg_keys.keys_dir / f"{gpg_keys.other}.asc", keys / f"{gpg_keys.good}.asc")
    with pytest.raises(VerificationError, match=f"does not hold key {gpg_keys.good}"):
        verify_signature(signature([gpg_keys.good]), data_file, sig_path, keys)


def test_revoked_key_is_refused(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.revoked, DATA, tmp_path / "pkg.sign")
    with pytest.raises(VerificationError, match=f"{gpg_keys.revoked}, which has been revoked"):
        verify_signature(signature([gpg_keys.revoked]), data_file, sig_path, gpg_keys.keys_dir)


def test_revoked_key_accepted_only_as_a_warning(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.revoked, DATA, tmp_path / "pkg.sign")
    summary = verify_signature(signature([gpg_keys.revoked], accept_revoked=True), data_file,
                               sig_path, gpg_keys.keys_dir)
    assert "WARNING" in summary and "REVOKED" in summary and gpg_keys.revoked in summary
    assert "sha256 pin" in summary


def test_revoked_key_with_bad_signature_is_still_bad(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.revoked, b"other data", tmp_path / "pkg.sign")
    with pytest.raises(VerificationError, match="bad signature"):
        verify_signature(signature([gpg_keys.revoked], accept_revoked=True), data_file,
                         sig_path, gpg_keys.keys_dir)


def test_expired_key_is_refused(gpg_keys, data_file, tmp_path):
    sig_path = gpg_keys.sign(gpg_keys.expired, DATA, tmp_path / "pkg.sign")
    with pytest.raises(VerificationError, match=f"{gpg_keys.expired}, which has expired"):
        verify_signature(signature([gpg_keys.expired]), data_file, sig_path, gpg_keys.keys_dir)


def test_garbage_signature_file(gpg_keys, tmp_path):
    big = tmp_path / "big.tar"
    big.write_bytes(os.urandom(4_000_000))   # more than a pipe buffer: gpg stops reading early
    sig_path = tmp_path / "pkg.sign"
    sig_path.write_text("<html>not found</html>\n")
    with pytest.raises(VerificationError, match="unusable signature"):
        verify_signature(signature([gpg_keys.good]), big, sig_path, gpg_keys.keys_dir)


def test_missing_signature_file(gpg_keys, data_file, tmp_path):
    with pytest.raises(VerificationError, match="signature file is missing"):
        verify_signature(signature([gpg_keys.good]), data_file, tmp_path / "absent.sign",
                         gpg_keys.keys_dir)


@pytest.mark.parametrize("suffix", [".xz", ".bz2", ".gz"])
def test_signature_over_the_uncompressed_tar(gpg_keys, tmp_path, suffix):
    tarball = make_tarball(tmp_path / f"pkg-1.0.tar{suffix}", {"README": b"hello\n"})
    sig_path = gpg_keys.sign(gpg_keys.good, uncompressed_tar_bytes(tarball), tmp_path / "pkg.sign")
    summary = verify_signature(signature([gpg_keys.good], covers="tar"), tarball, sig_path,
                               gpg_keys.keys_dir)
    assert gpg_keys.good in summary


@pytest.mark.parametrize("suffix", [".xz", ".bz2"])
def test_tar_signature_over_other_content_is_bad(gpg_keys, tmp_path, suffix):
    tarball = make_tarball(tmp_path / f"pkg-1.0.tar{suffix}", {"README": b"hello\n"})
    other = make_tarball(tmp_path / f"other.tar{suffix}", {"README": b"tampered\n"})
    sig_path = gpg_keys.sign(gpg_keys.good, uncompressed_tar_bytes(other), tmp_path / "pkg.sign")
    with pytest.raises(VerificationError, match="bad signature"):
        verify_signature(signature([gpg_keys.good], covers="tar"), tarball, sig_path,
                         gpg_keys.keys_dir)


def test_signature_over_the_compressed_file_does_not_pass_as_tar(gpg_keys, tmp_path):
    tarball = make_tarball(tmp_path / "pkg-1.0.tar.xz", {"README": b"hello\n"})
    sig_path = gpg_keys.sign(gpg_keys.good, tarball.read_bytes(), tmp_path / "pkg.sign")
    with pytest.raises(VerificationError, match="bad signature"):
        verify_signature(signature([gpg_keys.good], covers="tar"), tarball, sig_path,
                         gpg_keys.keys_dir)


def test_tar_cover_found_by_magic_under_a_part_name(gpg_keys, tmp_path):
    """download() verifies `.pkg-1.0.tar.bz2.part`: no suffix to go by."""
    tarball = make_tarball(tmp_path / "pkg-1.0.tar.bz2", {"README": b"hello\n"})
    part = tmp_path / ".pkg-1.0.tar.bz2.part"
    shutil.copy(tarball, part)
    sig_path = gpg_keys.sign(gpg_keys.good, uncompressed_tar_bytes(tarball), tmp_path / "pkg.sign")
    summary = verify_signature(signature([gpg_keys.good], covers="tar"), part, sig_path,
                               gpg_keys.keys_dir, display_name="pkg-1.0.tar.bz2")
    assert gpg_keys.good in summary


def test_corrupt_compressed_data_is_a_verification_error(gpg_keys, tmp_path):
    tarball = tmp_path / "pkg-1.0.tar.xz"
    tarball.write_bytes(b"\xfd7zXZ\x00" + b"garbage" * 1000)
    sig_path = gpg_keys.sign(gpg_keys.good, b"x", tmp_path / "pkg.sign")
    with pytest.raises(VerificationError, match="pkg-1.0.tar.xz"):
        verify_signature(signature([gpg_keys.good], covers="tar"), tarball, sig_path,
                         gpg_keys.keys_dir)


def test_users_own_keyring_is_never_used(gpg_keys, data_file, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GNUPGHOME", str(home / ".gnupg"))
    sig_path = gpg_keys.sign(gpg_keys.good, DATA, tmp_path / "pkg.sign")
    verify_signature(signature([gpg_keys.good]), data_file, sig_path, gpg_keys.keys_dir)
    assert list(home.iterdir()) == []
