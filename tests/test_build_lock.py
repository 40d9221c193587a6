"""One run per build folder: a second `doit` in a folder another run holds
refuses at once naming the holder; the lock goes with the process that
held it (killed -9 included), and read-only commands run beside it."""
import os
import signal
import subprocess
import time

from tests.conftest import DOIT, ROOT, project_env, run_doit


def _holder(env, folder):
    """A real doit run, stopped (SIGSTOP) once it holds the folder's lock."""
    proc = subprocess.Popen(DOIT + ["line=linux-6.1", "prepare"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    lock = folder / ".lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and f"pid {proc.pid}:" in lock.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGSTOP)
    return proc


def test_a_second_run_in_a_held_folder_refuses_naming_the_holder(tmp_path):
    folder = tmp_path / "build"
    env = project_env(LTSP_MOSIX_BUILD_DIR=str(folder), LTSP_MOSIX_DL_DIR=str(tmp_path / "dl"))
    first = _holder(env, folder)
    try:
        second = run_doit("line=linux-6.1", "config:pentium", env=env, check=False, timeout=60)
        said = second.stdout + second.stderr
        assert second.returncode == 3, said[-1500:]
        assert f"build folder {folder} is in use by another run (pid {first.pid}: doit line=linux-6.1 prepare)" in said
        assert "Traceback" not in said
        listed = run_doit("line=linux-6.1", "list", env=env, timeout=60)      # reading only: runs beside it
        assert "kernel" in listed.stdout
    finally:
        os.killpg(first.pid, signal.SIGKILL)     # as kill -9 or a power cut would end it
        first.wait()
    # the kernel released the dead run's lock: the next run takes the folder
    after = run_doit("line=linux-6.1", "forget", env=env, check=False, timeout=60)
    assert "is in use by another run" not in after.stdout + after.stderr
