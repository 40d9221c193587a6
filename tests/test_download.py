"""kernels.download against a real loopback HTTP server and file:// URLs."""
import hashlib
import os

import pytest

from common.errors import InfraError, VerificationError
from kernels import hashes
from kernels.download import download, download_from, part_path
from tests.net_fixtures import *  # noqa: F401,F403  (file_server, closed_port_url)

BODY = os.urandom(200_000)
FAST = {"timeout": 5, "retries": 2, "backoff": 0.01, "progress": False}


def pinned_verifier(tmp_path, body=BODY, name="pkg.tar.gz"):
    """A real verify callback: the sha256 check fetch uses."""
    hash_file = tmp_path / "line.hash"
    hash_file.write_text(f"sha256  {hashlib.sha256(body).hexdigest()}  {name}\n")
    return lambda part: hashes.check(hash_file, part, file=name)


@pytest.fixture
def dl(tmp_path):
    return tmp_path / "dl"


def test_good_download(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    result = download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
                      verify=pinned_verifier(tmp_path), **FAST)
    assert result == dl / "pkg.tar.gz" and result.read_bytes() == BODY
    assert os.listdir(dl) == ["pkg.tar.gz"]          # no .part left
    assert file_server.request_count == 1


def test_no_progress_line_when_not_asked(file_server, dl, capsys):
    file_server.files["/pkg.tar.gz"] = BODY
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz", **FAST)
    assert capsys.readouterr().err == ""


def test_progress_shows_bytes_total_percent_and_rate(file_server, dl, capsys):
    file_server.files["/pkg.tar.gz"] = BODY
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz", **{**FAST, "progress": True})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("pkg.tar.gz: 195.3 KiB / 195.3 KiB (100%) ") and line.endswith("/s")


def test_resume_after_cut_connection_uses_range(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    file_server.cut_after["/pkg.tar.gz"] = 70_000
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
             verify=pinned_verifier(tmp_path), **FAST)
    assert (dl / "pkg.tar.gz").read_bytes() == BODY
    first, second = file_server.requests_for("/pkg.tar.gz")
    assert first.range is None and second.range == "bytes=70000-"


def test_server_ignoring_range_restarts_from_zero(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    file_server.cut_after["/pkg.tar.gz"] = 50_000
    file_server.ignore_range.add("/pkg.tar.gz")
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
             verify=pinned_verifier(tmp_path), **FAST)
    assert (dl / "pkg.tar.gz").read_bytes() == BODY
    assert [r.range for r in file_server.requests_for("/pkg.tar.gz")] == [None, "bytes=50000-"]


def test_stale_longer_part_gets_416_and_restarts(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    dl.mkdir()
    part_path(dl / "pkg.tar.gz").write_bytes(b"x" * (len(BODY) + 10))
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
             verify=pinned_verifier(tmp_path), **FAST)
    assert (dl / "pkg.tar.gz").read_bytes() == BODY
    assert [r.range for r in file_server.requests_for("/pkg.tar.gz")] == \
        [f"bytes={len(BODY) + 10}-", None]


def test_complete_part_from_an_earlier_run_is_verified_and_kept(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    dl.mkdir()
    part_path(dl / "pkg.tar.gz").write_bytes(BODY)
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
             verify=pinned_verifier(tmp_path), **FAST)
    assert (dl / "pkg.tar.gz").read_bytes() == BODY
    assert [r.range for r in file_server.requests_for("/pkg.tar.gz")] == [f"bytes={len(BODY)}-"]


def test_resumed_part_with_wrong_bytes_is_fetched_again_from_zero(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    dl.mkdir()
    part_path(dl / "pkg.tar.gz").write_bytes(b"stale bytes of an older upstream file")
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
             verify=pinned_verifier(tmp_path), **FAST)
    assert (dl / "pkg.tar.gz").read_bytes() == BODY
    assert [r.range for r in file_server.requests_for("/pkg.tar.gz")][-1] is None


def test_404_on_primary_goes_to_mirror_at_once(file_server, dl, tmp_path):
    file_server.files["/mirror/pkg.tar.gz"] = BODY
    primary, mirror = file_server.url("/primary/pkg.tar.gz"), file_server.url("/mirror/pkg.tar.gz")
    path, origin = download_from([primary, mirror], dl / "pkg.tar.gz",
                                 verify=pinned_verifier(tmp_path), **FAST)
    assert path.read_bytes() == BODY and origin == mirror
    assert len(file_server.requests_for("/primary/pkg.tar.gz")) == 1   # a 404 is not retried


def test_5xx_is_retried(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = BODY
    file_server.fail_times["/pkg.tar.gz"] = 2
    download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
             verify=pinned_verifier(tmp_path), **FAST)
    assert (dl / "pkg.tar.gz").read_bytes() == BODY
    assert len(file_server.requests_for("/pkg.tar.gz")) == 3


def test_all_mirrors_down_lists_every_url_and_leaves_nothing(file_server, dl):
    down1, down2 = closed_port_url("/a/pkg.tar.gz"), closed_port_url("/b/pkg.tar.gz")
    missing = file_server.url("/c/pkg.tar.gz")
    with pytest.raises(InfraError) as error:
        download([down1, missing, down2], dl / "pkg.tar.gz", **FAST)
    message = str(error.value)
    assert "pkg.tar.gz" in message
    for url in (down1, missing, down2):
        assert url in message
    assert "Connection refused" in message and "HTTP 404" in message
    assert list(dl.iterdir()) == []


def test_giving_up_mid_file_removes_the_part(file_server, dl):
    file_server.files["/pkg.tar.gz"] = BODY
    file_server.cut_after["/pkg.tar.gz"] = 1000
    file_server.cut_requests["/pkg.tar.gz"] = 99            # every attempt is cut
    with pytest.raises(InfraError, match=r"gave up after 3 attempts"):
        download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz", **FAST)
    ranges = [r.range for r in file_server.requests_for("/pkg.tar.gz")]
    assert ranges == [None, "bytes=1000-", "bytes=2000-"]   # each retry resumed
    assert list(dl.iterdir()) == []


def test_hash_mismatch_leaves_nothing(file_server, dl, tmp_path):
    file_server.files["/pkg.tar.gz"] = b"tampered" + BODY[8:]
    with pytest.raises(VerificationError) as error:
        download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz",
                 verify=pinned_verifier(tmp_path), **FAST)
    assert "sha256 mismatch" in str(error.value) and file_server.url("/pkg.tar.gz") in str(error.value)
    assert list(dl.iterdir()) == []


def test_bad_file_on_primary_good_on_mirror(file_server, dl, tmp_path):
    file_server.files["/bad/pkg.tar.gz"] = b"tampered"
    file_server.files["/good/pkg.tar.gz"] = BODY
    path = download([file_server.url("/bad/pkg.tar.gz"), file_server.url("/good/pkg.tar.gz")],
                    dl / "pkg.tar.gz", verify=pinned_verifier(tmp_path), **FAST)
    assert path.read_bytes() == BODY


def test_file_url_mirror(dl, tmp_path):
    local = tmp_path / "mirror" / "pkg.tar.gz"
    local.parent.mkdir()
    local.write_bytes(BODY)
    missing = (tmp_path / "nowhere" / "pkg.tar.gz").as_uri()
    path, origin = download_from([missing, local.as_uri()], dl / "pkg.tar.gz",
                                 verify=pinned_verifier(tmp_path), **FAST)
    assert path.read_bytes() == BODY and origin == local.as_uri()
    assert os.listdir(dl) == ["pkg.tar.gz"]


def test_file_url_with_bad_content_leaves_nothing(dl, tmp_path):
    local = tmp_path / "pkg.tar.gz"
    local.write_bytes(b"not the pinned file")
    with pytest.raises(VerificationError):
        download([local.as_uri()], dl / "pkg.tar.gz", verify=pinned_verifier(tmp_path), **FAST)
    assert list(dl.iterdir()) == []


def test_offline_returns_cached_file_without_any_request(file_server, dl):
    dl.mkdir()
    (dl / "pkg.tar.gz").write_bytes(BODY)
    assert download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz", offline=True) == \
        dl / "pkg.tar.gz"
    assert file_server.request_count == 0


def test_offline_without_cached_file_is_a_clear_error(file_server, dl):
    with pytest.raises(InfraError) as error:
        download([file_server.url("/pkg.tar.gz")], dl / "pkg.tar.gz", offline=True)
    assert "pkg.tar.gz is not in the download dir" in str(error.value)
    assert "offline mode" in str(error.value)
    assert file_server.request_count == 0
