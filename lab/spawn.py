"""Run QEMU under a pty and make sure it never outlives its boot.

Three layers, because an orphan QEMU burns a shared core for minutes:
  1. a context manager whose `finally` kills and reaps the child (normal
     end, test failure, KeyboardInterrupt);
  2. PR_SET_PDEATHSIG, so the kernel SIGKILLs QEMU if this Python process
     dies without running `finally` (SIGKILL, crash);
  3. QEMU's own -no-reboot, so a node that reboots ends the VM."""
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pexpect

from common.errors import InfraError
from common.procs import die_with_parent

STOP_SECONDS = 10.0         # measured: ganesha exits ~1 s after SIGTERM
LOG_TAIL_LINES = 15


def kill_and_reap(child: pexpect.spawn) -> None:
    """SIGKILL if still alive, then wait, then close the pty.  Idempotent."""
    try:
        if child.isalive():
            child.kill(signal.SIGKILL)
    except OSError:
        pass
    try:
        # close(force=True) waits for the process (reaps it) and frees the pty.
        child.close(force=True)
    except Exception:
        # Last resort: the child must not stay a zombie.
        deadline = time.monotonic() + 5
        while child.isalive() and time.monotonic() < deadline:
            time.sleep(0.05)


@contextmanager
def running(argv: list[str], *, cwd=None) -> Iterator[tuple[pexpect.spawn, float]]:
    """Start argv (QEMU) on a pty; yield (child, monotonic start time)."""
    started_at = time.monotonic()
    child = pexpect.spawn(argv[0], argv[1:], cwd=cwd, encoding="utf-8",
                          codec_errors="replace", echo=False, timeout=None,
                          dimensions=(24, 250), preexec_fn=die_with_parent)
    try:
        yield child, started_at
    finally:
        kill_and_reap(child)


# -- daemons the tests start (rpcbind, ganesha, dnsmasq) -----------------------

def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def stop_process(proc: subprocess.Popen | None, timeout: float = STOP_SECONDS) -> None:
    """SIGTERM, wait, SIGKILL, reap.  Idempotent."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:    # SIGKILLed but not gone: nothing more to do
        pass


def wait_for_daemon(proc: subprocess.Popen, name: str, ready, *, timeout: float,
                    logs: tuple[Path, ...] = (), poll: float = 0.1) -> float:
    """Poll ready() until it is true; return the seconds it took.  A daemon
    that exits first, or is not ready in time, is an InfraError with the
    tails of its logs."""
    started = time.monotonic()
    while not ready():
        tails = "\n".join(f"{log}:\n{log_tail(log)}" for log in logs)
        if proc.poll() is not None:
            raise InfraError(f"{name} exited with status {proc.returncode}:\n{tails}")
        if time.monotonic() - started > timeout:
            raise InfraError(f"{name} was not ready within {timeout:.0f} s:\n{tails}")
        time.sleep(poll)
    return time.monotonic() - started
