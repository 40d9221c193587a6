"""Hostile LAVA input through `doit lava-import` as typed: every bad file is
bad input (exit 3, one line naming the file), never a bug report, and the
process stays small (peak resident memory read from the kernel's rusage of
the doit process, os.wait4) and copies at most its cap of console into lab/."""
import json
import os
import time

import pytest
import yaml

from kernels import matrix
from lab import lava
from tests.conftest import DOIT, ROOT
from tests.test_lava import imported

LINE = "linux-6.1"
VARIANT = "p4-epic100"
PEAK_LIMIT_MB = 200


def run_measured(job, results, env):
    """doit lava-import in a child whose own rusage is its peak (wait4)."""
    argv = DOIT + [f"line={LINE}", "lava-import", f"job={job}", f"results={results}", "device=lab-node-07"]
    started = time.monotonic()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:       # the child becomes doit, output to the pipe
        os.close(out_r)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.chdir(ROOT)
        os.execve(argv[0], argv, env)
    os.close(out_w)
    chunks = []
    while chunk := os.read(out_r, 65536):
        chunks.append(chunk)
    os.close(out_r)
    _, status, usage = os.wait4(pid, 0)
    output = b"".join(chunks).decode(errors="replace")
    return os.waitstatus_to_exitcode(status), output, usage.ru_maxrss / 1024, time.monotonic() - started


@pytest.fixture
def job_and_env(isolated, tmp_path):
    line = matrix.load_line(LINE)
    _, job_path, results = imported(line, line.variant(VARIANT), tmp_path)
    return job_path, results, dict(os.environ)


def _laughs(depth: int = 12, width: int = 9) -> str:
    """The "billion laughs" shape: each anchor a list of `width` aliases of the one before."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, depth):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_small_and_fast(job_and_env, tmp_path):
    job, _, env = job_and_env
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs())
    assert bomb.stat().st_size < 1500
    log_bomb = tmp_path / "bomb.log"
    log_bomb.write_text('{"dt": "x", "lvl": "results", "msg": {"case": "job", "extra": '
                        + "{" + _laughs().replace("\n", ", ").rstrip(", ") + "}}}\n")
    for results in (bomb, log_bomb):
        code, output, peak, seconds = run_measured(job, results, env)
        print(f"{results.name}: exit {code}, peak {peak:.0f} MB, {seconds:.1f} s: {output.strip().splitlines()[-1]}")
        assert code == 3, output
        assert "alias" in output and results.name in output
        assert "Traceback" not in output
        assert peak < PEAK_LIMIT_MB


def test_a_huge_console_line_and_a_huge_file_are_refused_unread(job_and_env, tmp_path):
    job, results, env = job_and_env
    one_line = tmp_path / "line.log"
    with one_line.open("w") as out:
        out.write('{"dt": "x", "lvl": "target", "msg": "' + "A" * (20 * 1024 * 1024) + '"}\n')
    big = tmp_path / "big.log"
    with big.open("w") as out:
        line = '{"dt": "x", "lvl": "target", "msg": "' + "B" * 1000 + '"}\n'
        out.write(line * (40 * 1024))          # 40 MB of ordinary lines
    for path, message in ((one_line, "over the 256 KiB cap per line"),
                          (big, "over the 32 MiB cap")):
        code, output, peak, seconds = run_measured(job, path, env)
        print(f"{path.name}: exit {code}, peak {peak:.0f} MB, {seconds:.1f} s: {output.strip().splitlines()[-1]}")
        assert code == 3 and path.name in output and message in output, output
        assert peak < PEAK_LIMIT_MB
    assert not list((tmp_path / "build").rglob("lab/*"))     # nothing imported, nothing copied


def test_the_console_copied_into_lab_is_capped(job_and_env, tmp_path):
    job, _, env = job_and_env
    job_data = yaml.safe_load(job.read_text())
    log = tmp_path / "run.log"
    sha = job_data["metadata"]["ltsp_mosix.kernel_sha256"]
    lines = [json.dumps({"dt": "x", "lvl": "target", "msg": "C" * 4000}) for _ in range(3000)]
    lines.append(json.dumps({"dt": "x", "lvl": "results", "msg": {"definition": "lava", "case": "http-download",
                                                                   "result": "pass", "extra": {"label": "kernel",
                                                                                               "sha256sum": sha}}}))
    log.write_text("\n".join(lines) + "\n")
    code, output, peak, _ = run_measured(job, log, env)
    assert code == 0, output
    record = json.loads(next((tmp_path / "build").rglob(f"{VARIANT}/lab/*.json")).read_text())
    copied = open(record["log_path"]).read()
    assert len(copied) < 1024 * 1024 + 4096
    assert "[line cut]" in copied and "[console cut at 1048576 bytes" in copied


@pytest.mark.parametrize("job_text, message", [
    ("!!python/object/apply:os.system ['true']\n", "job.yaml: not valid YAML"),
    ("job_name: x\nmetadata: {}\n", "metadata ltsp_mosix.line is missing"),
    ("- a list\n", "must be a YAML mapping"),
    ("a: &x [1]\nb: *x\n", "alias *x refused"),
])
def test_a_bad_job_is_bad_input_naming_it(job_and_env, job_text, message):
    job, results, env = job_and_env
    job.write_text(job_text)
    code, output, _, _ = run_measured(job, results, env)
    assert code == 3 and message in output and "Traceback" not in output, output
    assert "bug" not in output.lower()


def test_the_caps_come_from_configs(isolated):
    limits = lava.settings().limits
    assert (limits.results_bytes, limits.line_bytes, limits.console_bytes) == (32 << 20, 256 << 10, 1 << 20)
