"""The .hash file: parsing, checking, and deliberate pinning."""
import datetime
import getpass
import hashlib

import pytest

from common.errors import UserError, VerificationError
from common.paths import CONFIGS
from kernels import hashes

DATA = b"a small source file\n" * 100
SHA256 = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "pkg-1.0.tar.gz"
    path.write_bytes(DATA)
    return path


def write_hash(tmp_path, text, name="testline.hash"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_reads_entries_and_skips_comments(tmp_path):
    path = write_hash(tmp_path, f"# origin: a listing\n\nmd5  {MD5.upper()}  a.tar\n"
                                f"sha256  {SHA256}  a.tar   # trailing comment\n")
    assert hashes.parse(path) == {"a.tar": {"md5": MD5, "sha256": SHA256}}


def test_missing_hash_file_holds_no_pins(tmp_path):
    assert hashes.parse(tmp_path / "absent.hash") == {}


@pytest.mark.parametrize("line, words", [
    (f"sha256 {SHA256}", "expected `<algo>  <hex>  <file>`"),
    (f"sha1  {SHA256[:40]}  a.tar", "unknown hash algorithm 'sha1'"),
    (f"sha256  {SHA256[:60]}  a.tar", "must be 64 hex digits"),
    (f"md5  {'z' * 32}  a.tar", "must be 32 hex digits"),
    (f"sha256  {SHA256}  dir/a.tar", "bare file name"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, words):
    path = write_hash(tmp_path, f"# comment\n{line}\n")
    with pytest.raises(UserError) as error:
        hashes.parse(path)
    assert f"{path}:2" in str(error.value)
    assert words in str(error.value)


def test_two_different_sha256_for_one_file_is_an_error(tmp_path):
    path = write_hash(tmp_path, f"sha256  {SHA256}  a.tar\nsha256  {'0' * 64}  a.tar\n")
    with pytest.raises(UserError, match=r":2: a second, different sha256 for a.tar"):
        hashes.parse(path)


def test_the_projects_own_hash_files_parse():
    for path in sorted((CONFIGS / "lines").glob("*.hash")):
        hashes.parse(path)


def test_check_passes_and_returns_sha256(tmp_path, data_file):
    path = write_hash(tmp_path, f"sha256  {SHA256}  {data_file.name}\nmd5  {MD5}  {data_file.name}\n")
    assert hashes.check(path, data_file) == SHA256


def test_check_unpinned_says_how_to_pin(tmp_path, data_file):
    path = write_hash(tmp_path, f"md5  {MD5}  {data_file.name}\n")  # md5 is no pin
    with pytest.raises(UserError) as error:
        hashes.check(path, data_file, source_name="pkg")
    message = str(error.value)
    assert "unpinned" in message and str(path) in message
    assert "doit pin line=testline source=pkg" in message


def test_check_sha256_mismatch_names_file_expected_actual_and_hash_file(tmp_path, data_file):
    wrong = "ab" * 32
    path = write_hash(tmp_path, f"sha256  {wrong}  {data_file.name}\n")
    with pytest.raises(VerificationError) as error:
        hashes.check(path, data_file)
    message = str(error.value)
    for part in (data_file.name, wrong, SHA256, str(path)):
        assert part in message


def test_check_md5_mismatch_fails_even_with_a_good_sha256(tmp_path, data_file):
    path = write_hash(tmp_path, f"sha256  {SHA256}  {data_file.name}\nmd5  {'0' * 32}  {data_file.name}\n")
    with pytest.raises(VerificationError, match="md5 mismatch"):
        hashes.check(path, data_file)


def test_check_uses_the_given_name_for_a_part_file(tmp_path):
    part = tmp_path / ".pkg-1.0.tar.gz.part"
    part.write_bytes(DATA)
    path = write_hash(tmp_path, f"sha256  {SHA256}  pkg-1.0.tar.gz\n")
    assert hashes.check(path, part, file="pkg-1.0.tar.gz") == SHA256


def test_pin_appends_entry_with_who_when_and_where(tmp_path):
    path = write_hash(tmp_path, "# header kept as is\nmd5  " + MD5 + "  a.tar")  # no final newline
    assert hashes.pin(path, "a.tar", SHA256.upper(), "downloaded from http://127.0.0.1/a.tar")
    text = path.read_text()
    assert text.startswith("# header kept as is\nmd5  " + MD5 + "  a.tar\n")
    comment = [line for line in text.splitlines() if line.startswith("# a.tar: pinned by")][0]
    assert f"{getpass.getuser()}@" in comment
    assert datetime.datetime.now(datetime.timezone.utc).date().isoformat() in comment
    assert "http://127.0.0.1/a.tar" in comment
    assert text.endswith(f"sha256  {SHA256}  a.tar\n")
    assert hashes.parse(path)["a.tar"] == {"md5": MD5, "sha256": SHA256}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["testline.hash"]  # no temp file left


def test_pin_creates_the_hash_file(tmp_path):
    path = tmp_path / "new.hash"
    hashes.pin(path, "a.tar", SHA256, "from somewhere")
    assert hashes.pinned_sha256(path, "a.tar") == SHA256


def test_pin_same_sha256_again_changes_nothing(tmp_path):
    path = tmp_path / "x.hash"
    hashes.pin(path, "a.tar", SHA256, "first")
    before = path.read_text()
    assert hashes.pin(path, "a.tar", SHA256, "second") is False
    assert path.read_text() == before


def test_pin_refuses_a_different_sha256(tmp_path):
    path = tmp_path / "x.hash"
    hashes.pin(path, "a.tar", SHA256, "first")
    before = path.read_text()
    with pytest.raises(UserError, match="already pinned"):
        hashes.pin(path, "a.tar", "0" * 64, "second")
    assert path.read_text() == before


def test_pin_refuses_a_non_sha256(tmp_path):
    with pytest.raises(UserError, match="not a sha256"):
        hashes.pin(tmp_path / "x.hash", "a.tar", MD5, "from somewhere")


def test_size_entries_parse_and_are_checked(tmp_path):
    path = tmp_path / "x.hash"
    data = b"some bytes"
    (tmp_path / "a.tar").write_bytes(data)
    path.write_text(f"size  {len(data)}  a.tar\n")
    assert hashes.parse(path) == {"a.tar": {"size": str(len(data))}}
    hashes.check_known(path, tmp_path / "a.tar")
    path.write_text(f"size  {len(data) + 1}  a.tar\n")
    with pytest.raises(VerificationError, match=f"size mismatch .*expected {len(data) + 1}.*actual {len(data)}"):
        hashes.check_known(path, tmp_path / "a.tar")


def test_a_size_must_be_a_byte_count(tmp_path):
    path = tmp_path / "x.hash"
    path.write_text("size  12k  a.tar\n")
    with pytest.raises(UserError, match=r"x.hash:1: size of a.tar must be a byte count, got '12k'"):
        hashes.parse(path)


def test_the_openmosix_line_carries_the_historic_digests():
    entries = hashes.parse(CONFIGS / "lines" / "openmosix-2.hash")
    assert entries["openMosix-2.4.22-2.bz2"] == {"md5": "98383791652633351317c59952735d16", "size": "245575"}
    assert entries["openmosix-tools-0.3.6-2.tar.gz"] == {
        "sha256": "c63f843890fdbaa3810d037912491b517cc6e7e101d1852d6f1def1b1edd5d6c", "size": "515181"}
    assert entries["linux-2.4.22.tar.bz2"]["size"] == "29528612"
    assert "pin line=linux-2.4.22" not in (CONFIGS / "lines" / "openmosix-2.hash").read_text()
