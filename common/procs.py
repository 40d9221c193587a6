"""Child processes that never outlive the run that started them.

  * die_with_parent(): PR_SET_PDEATHSIG, so the kernel SIGKILLs the child
    when this Python process dies without cleaning up (SIGKILL, a crash);
  * own_group(): the child leads a new process group, so the whole tree it
    starts (make -> gcc -> cc1 -> as) can be signalled at once;
  * stop_group(): SIGTERM to that group, SIGKILL after a grace period,
    and the leader reaped.
A compiler orphaned by a SIGKILL of both us and make keeps running; the
next build finds and stops that group (kernels/build.py)."""
import ctypes
import os
import signal
import subprocess
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the forked child before exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:    # not Linux: the caller's own cleanup still holds
        pass


def own_group_dying_with_parent() -> None:
    """preexec_fn: a new process group, and SIGKILL when we die."""
    os.setpgid(0, 0)
    die_with_parent()


def stop_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a child started with own_group_dying_with_parent and everything
    it started; reap the leader.  Idempotent."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(process.pid):
            process.poll()      # reap the leader once it exits
            time.sleep(0.05)
        if not group_alive(process.pid):
            break
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pgid: int) -> bool:
    """Any process left in the group (zombies of the group do not count)."""
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry.name}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def kill_group(pgid: int, grace: float = 10.0) -> None:
    """SIGKILL every process of a group we no longer have a handle on (an
    interrupted build's orphans) and wait until they are gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
