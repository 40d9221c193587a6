"""Replay recorded consoles through the real watcher (the code path of live
boots: a pexpect spawn reading a pty) and check verdicts and kinds."""
import re
import threading
from pathlib import Path

import pytest

from initrd.build import BOOT_MARKER
from lab.boot import watcher
from lab.boot.facts import parse_boot_facts
from lab.boot.patterns import FAILURE_PATTERNS, classify_line
from lab.boot.watcher import replay, watch_stream

CONSOLES = Path(__file__).parent / "fixtures" / "consoles"

# log file -> (verdict, kind).  Every fixture must be listed here.
EXPECTED = {
    "good-6.1-direct.log": ("pass", None),
    "good-6.1-pxe.log": ("pass", None),
    "good-2.4.22-ext2.log": ("pass", None),
    "good-2.4.22-direct.log": ("pass", None),
    "good-6.1-hostile-pxe-3584.log": ("pass", None),
    # 2.4 SMP says "BIOS BUG: ... TSC skew! FIXED." and boots on.
    "good-2.4.22-smp-pxe.log": ("pass", None),
    "warning-then-pass-6.1.log": ("pass", None),
    # The marker ends the watch: what follows it cannot fail the boot.
    "panic-after-marker-6.1.log": ("pass", None),
    "hang-6.1.log": ("hang", "timeout"),
    "qemu-exited-2.4.log": ("fail", "qemu-exited"),
    "kernel-panic-6.1.log": ("fail", "kernel-panic"),
    # 6.1's node kernel has no block devices: without an initramfs it finds no init.
    "no-initramfs-6.1.log": ("fail", "no-init"),
    "no-root-2.4.log": ("fail", "no-root"),
    # The watcher passes these; boot_once's CPU count check fails them (below).
    "smp-on-one-cpu-2.4.log": ("pass", None),
    "smp-on-one-cpu-6.1.log": ("pass", None),
    "init-died-6.1.log": ("fail", "init-died"),
    "no-init-2.4.log": ("fail", "no-init"),
    "bug-null-6.1.log": ("fail", "bug"),
    "kernel-bug-at-2.4.log": ("fail", "bug"),
    "oops-null-2.4.log": ("fail", "oops"),
    "gpf-6.1.log": ("fail", "oops"),
    "cpu-mismatch-6.1.log": ("fail", "cpu-mismatch"),
    "initrd-beyond-memory-2.4.log": ("fail", "initrd-beyond-memory"),
    "initrd-beyond-memory-2.4.22-hostile-pxe.log": ("fail", "initrd-beyond-memory"),
    "initrd-relocation-failed-6.1.log": ("fail", "initrd-relocation-failed"),
    "pxe-kernel-missing.log": ("fail", "pxe-load-failed"),
    "pxe-no-entry.log": ("fail", "pxe-no-entry"),
}


def _watch(log: Path, **kwargs):
    hangs = EXPECTED[log.name][0] == "hang"
    with replay(log, stay_open=hangs) as child:
        return watch_stream(child, timeout=1.0 if hangs else 10, drain_seconds=0.2, **kwargs)


def test_every_fixture_has_an_expectation():
    assert sorted(p.name for p in CONSOLES.glob("*.log")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_replayed_console_gives_expected_verdict(name):
    verdict, kind = EXPECTED[name]
    watch = _watch(CONSOLES / name)
    assert (watch.verdict, watch.kind) == (verdict, kind), watch.line
    if verdict == "fail" and kind != "qemu-exited":
        # The reported line is a whole console line that shows the cause.
        row = classify_line(watch.line)
        assert row is not None and row.kind == kind and row.fatal
        assert watch.line in (CONSOLES / name).read_text()
    if verdict == "pass":
        assert watch.line == BOOT_MARKER


def test_failure_line_is_the_first_fatal_one():
    watch = _watch(CONSOLES / "initrd-beyond-memory-2.4.log")
    assert watch.line == "initrd extends beyond end of memory (0xbffe0000 > 0x38000000)"


def test_non_fatal_patterns_are_recorded_as_warnings():
    watch = _watch(CONSOLES / "warning-then-pass-6.1.log")
    assert [kind for kind, _ in watch.warnings] == ["warning", "call-trace"]


def test_hang_reports_the_last_console_line():
    watch = _watch(CONSOLES / "hang-6.1.log")
    assert watch.line == "Waiting for root device /dev/sda1..."
    assert watch.seconds >= 1.0


def test_console_is_written_to_the_log_file(tmp_path):
    source = CONSOLES / "good-2.4.22-ext2.log"
    log = tmp_path / "boots" / "one.log"
    watch = _watch(source, log_path=log)
    assert log.read_text().replace("\r\n", "\n") == source.read_text()
    assert watch.transcript.replace("\r\n", "\n") == source.read_text()
    assert not list(log.parent.glob("*.partial"))


def test_hang_still_leaves_a_complete_log(tmp_path):
    log = tmp_path / "hang.log"
    _watch(CONSOLES / "hang-6.1.log", log_path=log)
    assert log.read_text().rstrip().endswith("Waiting for root device /dev/sda1...")


def test_the_player_is_reaped_after_a_hang():
    with replay(CONSOLES / "hang-6.1.log", stay_open=True) as child:
        watch_stream(child, timeout=0.5, drain_seconds=0)
        pid = child.pid
    assert not child.isalive()
    assert not Path(f"/proc/{pid}").exists()


def test_cancel_ends_a_watch_quickly():
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with replay(CONSOLES / "hang-6.1.log", stay_open=True) as child:
        watch = watch_stream(child, timeout=30, cancel=cancel)
    # ignoring the cancel would end at the timeout, as ("hang", "timeout")
    assert (watch.verdict, watch.kind) == ("fail", "interrupted")


def test_facts_from_a_good_2_4_boot():
    facts = parse_boot_facts(_watch(CONSOLES / "good-2.4.22-ext2.log").transcript)
    assert facts.kernel == "2.4.22 #1 Mon Aug 25 00:00:00 UTC 2003"
    assert facts.mem_total_kb == 516180 and facts.cpus == 1
    assert facts.interfaces == ["lo", "eth0"]
    assert facts.mosix == "no Mosix"


@pytest.mark.parametrize("name", ["smp-on-one-cpu-2.4.log", "smp-on-one-cpu-6.1.log"])
def test_an_smp_kernel_on_one_cpu_is_failed_by_the_cpu_count(name):
    """Recorded: an SMP kernel on a one-CPU machine reaches its marker; the
    boot test fails it because the variant's machine has two CPUs."""
    from lab.boot.qemu import BootResult, _judge_cpus
    watch = _watch(CONSOLES / name)
    facts = parse_boot_facts(watch.transcript)
    assert " SMP " in facts.kernel and facts.cpus == 1
    result = BootResult(name=name, line="l", variant="pentium_smp", cpu="pentium_smp", nic="e1000",
                        boot_nic="e1000", mem_mb=512, path="direct", verdict=watch.verdict,
                        seconds=watch.seconds, kind=watch.kind, console_line=watch.line,
                        log_path=CONSOLES / name, cpus=facts.cpus)
    _judge_cpus(result, 2)
    assert (result.verdict, result.kind) == ("fail", "cpus-missing")


def test_recorded_consoles_say_how_they_were_recorded():
    """RECORDED.toml (tests/record_consoles.py) names the kernel and how it
    booted for every recorded log, and each log is there."""
    import tomllib
    recorded = tomllib.loads((CONSOLES / "RECORDED.toml").read_text())["recorded"]
    names = {entry["name"] for entry in recorded}
    assert {"good-6.1-pxe.log", "good-2.4.22-ext2.log", "no-root-2.4.log", "hang-6.1.log",
            "initrd-beyond-memory-2.4.22-hostile-pxe.log", "smp-on-one-cpu-2.4.log"} <= names
    for entry in recorded:
        assert (CONSOLES / entry["name"]).is_file()
        assert len(entry["kernel_sha256"]) == 64 and entry["line"] in ("linux-6.1", "linux-2.4.22")
        assert EXPECTED[entry["name"]] == (entry["verdict"], entry["kind"] or None), entry


def test_facts_from_a_recorded_hostile_6_1_boot():
    """Recorded: pxelinux put the initrd near 3 GB, 6.1 moved it below 896 MB."""
    facts = parse_boot_facts((CONSOLES / "good-6.1-hostile-pxe-3584.log").read_text())
    assert facts.initrd_start == 0xBFE83000
    assert facts.initrd_moved_to == 0x373FD000
    assert facts.mem_total_kb > 3_000_000 and facts.drivers == {"eth0": "e1000"}


def test_facts_and_relocation_from_the_2_4_relocation_line():
    """2.4 prints no RAMDISK line: patch 0014's message names both ends."""
    from lab.boot.qemu import relocation
    facts = parse_boot_facts("initrd relocated from 0xbfee0000 to 0x0402b000 (1048576 bytes)\n")
    assert (facts.initrd_start, facts.initrd_moved_to) == (0xBFEE0000, 0x0402B000)
    assert relocation(facts.initrd_start, facts.initrd_moved_to) == "0xbfee0000 -> 0x402b000"
    assert relocation(0x07000000, 0x0402B000) is None        # never was high
    assert relocation(0xBFEE0000, None) is None              # high, not moved
    assert relocation(0xBFEE0000, 0x38000000) is None        # "moved", but not below lowmem


def test_log_file_line_ends_are_plain_newlines(tmp_path):
    """Chunks as a pty delivers them: 6.1's "\r\n" doubled by onlcr, 2.4's
    "\n\r", and a "\r" split from its "\n" across chunks."""
    with open(tmp_path / "log", "w", newline="") as out:
        tee = watcher._Tee(out)
        for chunk in ["6.1 line\r", "\r\n2.4 line\r\n", "\r", "next\r\n\r"]:
            tee.write(chunk)
        tee.close()
    assert (tmp_path / "log").read_bytes() == b"6.1 line\n2.4 line\nnext\n"


def test_whole_line_decides_the_kind():
    assert classify_line("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b").kind == "init-died"
    assert classify_line("Kernel panic: VFS: Unable to mount root fs on 01:00").kind == "no-root"
    assert classify_line("Kernel panic - not syncing: Fatal exception").kind == "kernel-panic"
    assert classify_line("e1000 0000:00:03.0 eth0: (PCI:33MHz:32-bit) 52:54:00:12:34:56") is None
    assert classify_line("BIOS BUG: CPU#1 improperly initialized, has 1677 usecs TSC skew! FIXED.") is None
    assert classify_line("[    0.530902] BUG: kernel NULL pointer dereference, address: 00000010").kind == "bug"
    assert classify_line("BUG: unable to handle page fault for address: f8000000").kind == "bug"


def test_pattern_table_is_well_formed():
    kinds_seen_nonfatal = False
    for row in FAILURE_PATTERNS:
        re.compile(row.regex)
        assert row.kind and row.why
        # Fatal rows first: the whole-line classification must never turn a
        # fatal line into a warning.
        if not row.fatal:
            kinds_seen_nonfatal = True
        assert not (row.fatal and kinds_seen_nonfatal), row
    assert not any(re.search(row.regex, BOOT_MARKER) for row in FAILURE_PATTERNS)


def test_watcher_uses_the_initrd_marker():
    assert watcher.BOOT_MARKER is BOOT_MARKER


def test_marker_split_across_poll_slices_is_still_seen():
    """With a cancel event the watcher expects in short slices; text that
    arrives in pieces across slices must still match."""
    from lab.spawn import running
    script = 'printf "ltsp-mosix: interfaces: lo eth0\\nLTSP-MOSIX-"; sleep 1.2; printf "BOOT-OK\\n"'
    with running(["sh", "-c", script]) as (child, started):
        watch = watch_stream(child, timeout=10, started_at=started, cancel=threading.Event(),
                             drain_seconds=0)
    assert watch.verdict == "pass" and watch.seconds >= 1.2
    assert parse_boot_facts(watch.transcript).interfaces == ["lo", "eth0"]
