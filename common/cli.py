"""How a doit run ends: each failed task reports its error as one message
(no traceback) and doit exits with the status of the error's kind
(common/errors.py): 1 kernel/test failure, 3 bad input, 4 infrastructure,
5 bug.  A bug's traceback is kept in a log under the build folder.
SIGINT and SIGTERM end the running task through the code's own cleanup
(make's process group stopped, QEMU reaped, namespaces removed) with one
line and status 130 or 143.

doit itself exits 1 for any failed task, so the first failure's status is
recorded in a file named after the main doit process (actions may run in
forked workers with `doit -n N`) and applied when that process exits."""
import atexit
import datetime
import errno
import fcntl
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from doit.exceptions import TaskFailed

from common import paths
from common.errors import EXIT_BUG, EXIT_INFRA_ERROR, EXIT_USER_ERROR, InfraError, LtspError

_MAIN_PID = os.getpid()


def _status_file() -> Path:
    """Outside the build folder: a full build folder must not lose the
    status of the failure that filled it."""
    return Path(tempfile.gettempdir()) / f"ltsp-mosix-doit-exit-status-{_MAIN_PID}"


_recorded: list[int] = []       # the same, for the main process, should the file not be writable
# An OSError with these is the machine's: the disk or the quota is full.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where the process is, as Ctrl-C raises KeyboardInterrupt,
    so every `finally` and `except KeyboardInterrupt` cleans up for both."""

    signum = signal.SIGTERM


def _raise_interrupted(signum, frame):
    raise Interrupted()


def install() -> None:
    """Call once, in the process that runs doit's main."""
    _status_file().unlink(missing_ok=True)
    atexit.register(_exit_with_recorded_status)
    signal.signal(signal.SIGTERM, _raise_interrupted)


def _record(status: int) -> None:
    if os.getpid() == _MAIN_PID:
        _recorded.append(status)
    try:
        with _status_file().open("a") as out:
            out.write(f"{status}\n")
    except OSError:
        pass        # the main process still has it (a forked worker's is lost with the file)


def _exit_with_recorded_status() -> None:
    if os.getpid() != _MAIN_PID:
        return
    path = _status_file()
    try:
        statuses = [int(text) for text in path.read_text().split()]
    except (OSError, ValueError):
        statuses = list(_recorded)
    path.unlink(missing_ok=True)
    if statuses:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(statuses[0])       # the failure doit stopped at decides


def action(step, *args):
    """A doit action running step(*args): an LtspError becomes its message
    and its kind's exit status; anything else is a bug, reported in one line
    with its traceback kept in a log."""
    def run():
        try:
            step(*args)
        except LtspError as error:
            _record(error.exit_status)
            return TaskFailed(str(error))
        except OSError as error:
            if error.errno not in _DISK_FULL:
                return _bug(error)
            _record(EXIT_INFRA_ERROR)
            where = f" ({error.filename})" if error.filename else ""
            return TaskFailed(str(InfraError(f"{step.__name__}: no space left on the device holding "
                                             f"{paths.build_dir()}{where}: free space and run again")))
        except KeyboardInterrupt as interrupt:
            signum = getattr(interrupt, "signum", signal.SIGINT)
            _record(128 + signum)
            return TaskFailed(f"interrupted by {signal.Signals(signum).name}: {step.__name__} stopped, "
                              f"its children stopped and reaped")
        except Exception as error:      # noqa: BLE001 - a bug: keep all of it, say where
            return _bug(error)
        return None
    run.__name__ = step.__name__
    return run


def _bug(error: Exception) -> TaskFailed:
    _record(EXIT_BUG)
    log = _write_bug_log(error)
    return TaskFailed(f"bug: {type(error).__name__}: {error} (traceback in {log}; please report it)")


def _write_bug_log(error: Exception) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    log = paths.build_dir() / "bugs" / f"{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(error))
    paths.atomic_write_text(log, f"argv: {' '.join(sys.argv)}\n{text}")
    return log


# doit commands that only read: they run beside a run that holds the folder.
READ_ONLY_COMMANDS = {"list", "help", "info", "tabcompletion", "dumpdb"}
LOCK_NAME = ".lock"
_held = None


def hold_build_folder() -> None:
    """One run per build folder at a time: an exclusive flock on
    <build>/.lock, taken by the main doit process before any task runs and
    kept until it exits; the kernel releases it when the process dies, so a
    killed run never leaves it stuck.  `doit -n N` workers are forked from
    this process and share its lock; programs the tasks start do not
    inherit it (Python's descriptors are not inheritable).  A second run
    refuses at once, naming the holder."""
    global _held
    words = [a for a in sys.argv[1:] if not a.startswith("-") and "=" not in a]
    if words and words[0] in READ_ONLY_COMMANDS:
        return
    folder = paths.build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not said who it is"
        print(f"user error: build folder {folder} is in use by another run ({holder}); wait for it "
              f"to end, or give this run another folder (LTSP_MOSIX_BUILD_DIR)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}: doit {' '.join(sys.argv[1:])}"[:300] + "\n")
    handle.flush()
    _held = handle


def load_or_exit(load):
    """What dodo.py loads at import (the line): a bad input ends the run at
    once with its message and status, before doit parses the tasks."""
    try:
        return load()
    except LtspError as error:
        print(error, file=sys.stderr)
        sys.exit(error.exit_status)


def check_requested_variants(line, variant_tasks: tuple[str, ...], not_variants: set[str]) -> None:
    """`doit kernel:k6` would get doit's generic "not a task" answer; name
    the valid variants instead."""
    valid = {v.name for v in line.variants()}
    for arg in sys.argv[1:]:
        task, _, variant = arg.partition(":")
        if task in variant_tasks and variant and variant not in valid | not_variants:
            print(f"user error: unknown variant {variant!r} for line {line.name}; "
                  f"valid variants: {', '.join(sorted(valid))}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
