"""The pipeline as users type it: doit fetch / pin / prepare / config /
check on a small line whose kernel tarball (the fake 2.4 tree) is served by
a real HTTP server on 127.0.0.1."""
import os
import shutil

import pytest

from common.errors import EXIT_USER_ERROR
from tests.conftest import FAKE24_LINE, FIXTURES, run_doit
from tests.httpserver import FileServer
from tests.net_fixtures import make_tarball

FAKE_FILES = ["Makefile", "scripts/Configure", "arch/i386/config.in", "arch/i386/defconfig"]


@pytest.fixture
def served_line(isolated):
    """Line 'fake24' fetching linux-2.4.99.tar.bz2 from a loopback server."""
    tarball = make_tarball(isolated / "linux-2.4.99.tar.bz2",
                           {name: (FIXTURES / "fake24" / name).read_bytes() for name in FAKE_FILES},
                           top="linux-2.4.99")
    with FileServer({"/pub/linux-2.4.99.tar.bz2": tarball.read_bytes()}) as server:
        text = FAKE24_LINE.format(invariants="none.config").replace(
            "http://127.0.0.1:9/linux-2.4.99.tar.bz2", server.url("/pub/linux-2.4.99.tar.bz2"))
        (isolated / "configs" / "lines" / "fake24.toml").write_text(text)
        (isolated / "configs" / "lines" / "fake24.hash").write_text("# fake24: nothing pinned yet\n")
        shutil.copy(FIXTURES / "fake24-base.config", isolated / "configs" / "base" / "fake24.config")
        (isolated / "patches" / "fake24").mkdir()
        (isolated / "patches" / "fake24" / "series").write_text("")
        yield server


def doit(*args, check=True):
    return run_doit("line=fake24", *args, env=dict(os.environ), check=check, timeout=120)


def test_list_shows_every_task_with_a_doc(isolated):
    out = run_doit("list", env=dict(os.environ)).stdout
    for task in ("fetch", "pin", "prepare", "config", "check", "kernel"):
        line = next(text for text in out.splitlines() if text.split()[0] == task)
        assert len(line.split()) > 2, f"task {task} has no doc: {line!r}"


def test_unknown_line_is_a_message_listing_lines_not_a_traceback(isolated):
    result = run_doit("line=linux-9", "list", env=dict(os.environ), check=False)
    assert result.returncode == EXIT_USER_ERROR
    assert "unknown line 'linux-9'; valid lines: linux-2.4.22, linux-6.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_unpinned_then_pinned_then_prepared_and_configured(served_line, isolated):
    refused = doit("fetch", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    assert "doit pin line=fake24 source=linux" in refused.stdout + refused.stderr
    assert served_line.request_count == 0, "an unpinned source is refused before any download"

    doit("pin", "source=linux")
    hash_file = (isolated / "configs" / "lines" / "fake24.hash").read_text()
    assert "sha256" in hash_file and "linux-2.4.99.tar.bz2" in hash_file
    assert served_line.url("/pub/linux-2.4.99.tar.bz2") in hash_file

    fetched = doit("fetch")
    assert "sha256 pinned" in fetched.stdout
    doit("config:pentium_smp", "check")
    config = (isolated / "build" / "fake24" / "variants" / "pentium_smp" / "config").read_text()
    assert "CONFIG_SMP=y" in config
    prepared = (isolated / "build" / "fake24" / "prepared.json").read_text()
    assert '"override": null' in prepared


def test_config_reruns_exactly_when_a_fragment_changes(served_line, isolated):
    doit("pin", "source=linux")
    assert ".  config:athlon" in doit("config:athlon").stdout
    assert "-- config:athlon" in doit("config:athlon").stdout
    fragment = isolated / "configs" / "cpu" / "athlon.config"
    fragment.write_text(fragment.read_text() + "CONFIG_NE2K_PCI=y\n")
    assert ".  config:athlon" in doit("config:athlon").stdout


def test_malformed_fragment_fails_with_file_and_line(served_line, isolated):
    doit("pin", "source=linux")
    fragment = isolated / "configs" / "nic" / "epic100.config"
    fragment.write_text(fragment.read_text() + "CONFIG_EPIC100 = y\n")
    result = doit("config:p4-epic100", check=False)
    assert result.returncode != 0
    assert f"{fragment}:9: not a config line" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_offline_mode_uses_only_the_download_dir(served_line, isolated, monkeypatch):
    doit("pin", "source=linux")
    requests = served_line.request_count
    monkeypatch.setenv("LTSP_MOSIX_OFFLINE", "1")
    assert doit("fetch").returncode == 0
    assert served_line.request_count == requests
    (isolated / "dl" / "linux-2.4.99.tar.bz2").unlink()
    result = doit("fetch", check=False)
    assert result.returncode != 0 and "offline" in (result.stdout + result.stderr).lower()


def test_mosix_line_stops_early_with_what_a_site_must_do(isolated):
    result = run_doit("line=mosix-1.7.0", "kernel:pentium", env=dict(os.environ), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "line mosix-1.7.0 cannot be built here" in output and "docs/lines.md" in output
    assert ".c:" not in output and "Traceback" not in output    # no compiler output
