"""Watch a serial console until the boot marker, a fatal pattern, the end of
the stream or a timeout, and say pass / fail / hang.

The watcher reads any pexpect spawn: a live QEMU (lab/spawn.py) or a
recorded log replayed with `replay(log)`, so tests exercise the same code
path as real boots.

Decisions:
  * pass  = the marker appeared and no fatal pattern came before it.  The
            marker ENDS the watch: anything printed after it (the node is
            already rebooting) cannot change the verdict; it is still
            drained into the log for people to read.
  * fail  = a fatal pattern (kind = its row in lab/boot/patterns.py, line = the
            whole console line), or the stream ended without the marker
            (kind "qemu-exited": e.g. a triple fault under -no-reboot).
  * hang  = neither within `timeout` seconds (kind "timeout"; line = the last
            console line seen, usually the best hint)."""
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pexpect

from common.errors import UserError
from initrd.build import BOOT_MARKER
from lab.boot.patterns import FAILURE_PATTERNS, FailurePattern, classify_line
from lab.spawn import running

__all__ = ["Watch", "watch_stream", "replay", "clean_line",
           "FAILURE_PATTERNS", "FailurePattern", "BOOT_MARKER"]

PASS, FAIL, HANG = "pass", "fail", "hang"
INFRA_ERROR = "infra-error"     # a boot that failed twice for the machine's reasons
# Failure kinds that blame the machine, not the kernel: QEMU ended before
# printing a single line (it could not start), or the watch was cancelled.
INFRA_KINDS = frozenset({"qemu-no-output", "interrupted"})

# After a verdict, keep reading this long so the log holds the panic text
# or the reboot; QEMU exiting ends it sooner.
DRAIN_SECONDS = 3.0
# How often a long expect wakes up to look at the cancel event.
_POLL_SECONDS = 0.5
# Firmware (SeaBIOS, iPXE, pxelinux) paints the serial line with escapes.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>c]")


@dataclass
class Watch:
    verdict: str                      # "pass" | "fail" | "hang"
    kind: str | None = None           # failure kind; None on pass
    line: str | None = None           # the console line that decided it
    seconds: float | None = None      # from started_at to the marker / verdict
    warnings: list[tuple[str, str]] = field(default_factory=list)   # (kind, line)
    transcript: str = ""              # everything read, as written to the log


def clean_line(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "").strip()


class _Tee:
    """pexpect's logfile_read target: keeps the raw transcript in memory and
    streams it to the log file as it arrives (a hang still leaves a log).

    The file gets plain "\n" line ends.  On the pty, QEMU's "\r\n" becomes
    "\r\r\n" (onlcr) and 2.4's serial console, which sends "\n\r", becomes
    "\r\n\r": every log line would start or end with ^M."""

    _LINE_END = re.compile(r"\r*\n\r*")

    def __init__(self, log_file):
        self.parts: list[str] = []
        self.log_file = log_file
        self._held_cr = ""          # trailing "\r"s of a chunk: a "\n" may follow
        self._at_line_start = True  # so a chunk's leading "\r"s belong to the last "\n"

    def write(self, data: str) -> None:
        self.parts.append(data)
        if self.log_file is None:
            return
        text = self._held_cr + data
        body = text.rstrip("\r")
        self._held_cr = text[len(body):]
        if self._at_line_start:
            body = body.lstrip("\r")
        if body:
            body = self._LINE_END.sub("\n", body)
            self._at_line_start = body.endswith("\n")
            self.log_file.write(body)

    def flush(self) -> None:
        if self.log_file is not None:
            self.log_file.flush()

    def close(self) -> None:
        if self.log_file is not None:
            if not self._at_line_start:    # a bare "\r" at the very end
                self.log_file.write(self._held_cr)
            self._held_cr = ""
            self.log_file.close()

    def text(self) -> str:
        return "".join(self.parts)


def _last_console_line(text: str) -> str | None:
    for raw in reversed(text.splitlines()):
        line = clean_line(raw)
        if line:
            return line
    return None


class _Session:
    """One watch over one child: the expect loop and its bookkeeping."""

    def __init__(self, child, marker, patterns, deadline, cancel):
        self.child = child
        self.patterns = list(patterns)
        self.deadline = deadline
        self.cancel = cancel
        self.line_so_far = ""      # text since the last newline already consumed
        self.expectations = ([re.compile(re.escape(marker))]
                             + [re.compile(p.regex) for p in self.patterns]
                             + [pexpect.EOF, pexpect.TIMEOUT])
        self.eof_index = len(self.expectations) - 2
        self.timeout_index = len(self.expectations) - 1

    def consume(self, text: str) -> None:
        self.line_so_far = (self.line_so_far + text).rsplit("\n", 1)[-1]

    def expect(self, expectations, until: float) -> int:
        """expect() in short slices so a cancel event is noticed; returns
        the TIMEOUT index only when `until` passed."""
        timeout_index = len(expectations) - 1
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return timeout_index
            if self.cancel is not None and self.cancel.is_set():
                raise _Cancelled()
            step = min(remaining, _POLL_SECONDS) if self.cancel is not None else remaining
            index = self.child.expect(expectations, timeout=step)
            if index != timeout_index:
                return index

    def rest_of_line(self, matched: str) -> str:
        """Complete the line a pattern matched in (its start is already
        consumed; read up to the newline, briefly)."""
        start = self.line_so_far
        self.consume(matched)
        rest = ""
        if "\n" not in matched:
            index = self.expect([re.compile(r"\r?\n"), pexpect.EOF, pexpect.TIMEOUT],
                                until=min(self.deadline, time.monotonic() + 2.0))
            rest = self.child.before if isinstance(self.child.before, str) else ""
            self.consume(rest + (self.child.after if index == 0 else ""))
        return clean_line(start + matched + rest)

    def drain(self, seconds: float) -> None:
        """Read on after the verdict so the log is complete; never raises."""
        try:
            self.child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=seconds)
        except Exception:   # a dead pty or closed child: the log is what we have
            pass


class _Cancelled(Exception):
    pass


def watch_stream(child: pexpect.spawn, *, timeout: float,
                 log_path: Path | None = None,
                 marker: str = BOOT_MARKER,
                 patterns=FAILURE_PATTERNS,
                 started_at: float | None = None,
                 drain_seconds: float = DRAIN_SECONDS,
                 cancel: threading.Event | None = None) -> Watch:
    """Watch child's output (a str-mode spawn: encoding set) and return the
    verdict.  The full console goes to log_path, written under a temporary
    name and renamed when the watch ends (also on errors and interrupts)."""
    started_at = time.monotonic() if started_at is None else started_at
    deadline = started_at + timeout
    log_file = tmp_path = None
    if log_path is not None:
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = log_path.with_name(log_path.name + ".partial")
        log_file = open(tmp_path, "w", encoding="utf-8", newline="")
    tee = _Tee(log_file)
    previous_logfile = child.logfile_read
    child.logfile_read = tee
    try:
        watch = _watch(_Session(child, marker, patterns, deadline, cancel),
                       started_at, drain_seconds)
        watch.transcript = tee.text()
        return watch
    finally:
        child.logfile_read = previous_logfile
        tee.close()
        if tmp_path is not None:
            tmp_path.replace(log_path)


def _watch(session: _Session, started_at: float, drain_seconds: float) -> Watch:
    warnings: list[tuple[str, str]] = []

    def elapsed() -> float:
        return round(time.monotonic() - started_at, 3)

    try:
        while True:
            index = session.expect(session.expectations, until=session.deadline)
            child = session.child
            if index == session.timeout_index:
                return Watch(HANG, "timeout", _transcript_tail(child), elapsed(), warnings)
            session.consume(child.before)
            if index == session.eof_index:
                last = _transcript_tail(child)
                kind = "qemu-exited" if last else "qemu-no-output"
                return Watch(FAIL, kind, last, elapsed(), warnings)
            if index == 0:
                seconds = elapsed()
                marker_line = session.rest_of_line(child.after)
                session.drain(drain_seconds)
                return Watch(PASS, None, marker_line, seconds, warnings)
            row = session.patterns[index - 1]
            line = session.rest_of_line(child.after)
            # The whole line decides the kind: "Kernel panic - not syncing:
            # Attempted to kill init!" is an init death, not a generic panic.
            kind_row = classify_line(line, session.patterns) or row
            if not kind_row.fatal:
                warnings.append((kind_row.kind, line))
                continue
            seconds = elapsed()
            session.drain(drain_seconds)
            return Watch(FAIL, kind_row.kind, line, seconds, warnings)
    except _Cancelled:
        return Watch(FAIL, "interrupted", "watch cancelled", elapsed(), warnings)


def _transcript_tail(child) -> str | None:
    tee = child.logfile_read
    return _last_console_line(tee.text()) if isinstance(tee, _Tee) else None


@contextmanager
def replay(log_path: Path, *, stay_open: bool = False) -> Iterator[pexpect.spawn]:
    """A spawn that plays a recorded console log, for tests and for
    re-judging an old boot with a newer pattern table.  stay_open keeps the
    stream open after the log, as a hung QEMU would (verdict "hang" rather
    than "qemu-exited").  The player is killed and reaped on exit."""
    log_path = Path(log_path)
    if not log_path.is_file():
        raise UserError(f"console log {log_path} does not exist")
    argv = ["cat", str(log_path)]
    if stay_open:
        argv = ["sh", "-c", 'cat "$0" && exec sleep 3600', str(log_path)]
    with running(argv) as (child, _started_at):
        yield child
