"""Run a long command (make, patch) with its full output in a log file and
a short progress line on the terminal: task, stage, elapsed seconds and the
last thing make did.  On failure the last error lines and the log path are
part of the error, so nobody has to dig for them."""
import subprocess
import sys
import time
from pathlib import Path

from common.errors import InfraError, UserError
from common.procs import group_alive, own_group_dying_with_parent, stop_group

PROGRESS_EVERY = 10.0   # seconds between progress lines
ERROR_WORDS = ("error", "Error", "ERROR", "failed", "FAILED", "No rule", "undefined reference")
# Output that blames the machine, not the code being built: the compiler was
# killed (the OOM killer, a signal), memory or disk ran out.
MACHINE_FAULTS = ("Killed signal terminated program", "killed by signal", "internal compiler error: Killed",
                  "No space left on device", "Cannot allocate memory", "virtual memory exhausted",
                  "out of memory allocating", "Disk quota exceeded")


def run_logged(argv: list[str], *, log: Path, label: str, stage: str, cwd: Path | None = None,
               env: dict | None = None, stdin=subprocess.DEVNULL, quiet: bool = False,
               error_class=UserError, on_start=None) -> float:
    """Run argv; append its output to `log`; return elapsed seconds.

    The command leads its own process group and dies with us: whatever
    ends this call early (Ctrl-C, SIGTERM, an exception) stops the whole
    group - make and every compiler it started - before returning.
    on_start(process) runs once it is started (e.g. to record its group)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    last_print = start
    tail: list[str] = []
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace",
                                   preexec_fn=own_group_dying_with_parent)
    except FileNotFoundError:
        raise InfraError(f"{label}: cannot run {argv[0]!r}: not installed") from None
    try:
        if on_start:
            on_start(process)
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            for line in process.stdout:
                out.write(line)
                tail = (tail + [line.rstrip()])[-200:]
                now = time.monotonic()
                if not quiet and now - last_print >= PROGRESS_EVERY:
                    _progress(label, stage, now - start, line.strip())
                    last_print = now
            code = process.wait()
            out.write(f"# exit {code} after {time.monotonic() - start:.1f}s\n")
    finally:
        if process.poll() is None or group_alive(process.pid):
            stop_group(process)
        process.stdout.close()
    elapsed = time.monotonic() - start
    if code != 0:
        fault = machine_fault(code, tail)
        cls = InfraError if fault else error_class
        why = f" ({fault})" if fault else ""
        raise cls(f"{label}: {stage} failed (exit {code}){why} after {elapsed:.0f}s\n"
                  f"{_error_excerpt(tail)}\nfull log: {log}")
    if not quiet:
        _progress(label, f"{stage} done", elapsed, "")
    return elapsed


def machine_fault(code: int, tail: list[str]) -> str | None:
    """Why a failed command is the machine's fault, or None: the command
    itself was killed by a signal, or its output says a compiler was killed
    or memory or disk ran out."""
    if code < 0:
        return f"killed by signal {-code}"
    for line in reversed(tail):
        for marker in MACHINE_FAULTS:
            if marker in line:
                return line.strip()
    return None


def _progress(label: str, stage: str, elapsed: float, detail: str) -> None:
    print(f"[{label}] {stage:<18} {elapsed:6.0f}s  {detail[:70]}", file=sys.stderr, flush=True)


def _error_excerpt(tail: list[str], keep: int = 15) -> str:
    errors = [line for line in tail if any(word in line for word in ERROR_WORDS)]
    chosen = errors[-keep:] if errors else tail[-keep:]
    return "\n".join("  " + line for line in chosen)
