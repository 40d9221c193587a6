"""Who is at fault, through doit: each of the four error kinds ends the run
with its own exit status (common/errors.py, README, "What you type next") and a
one-line message, never a traceback on the terminal."""
import os
import shutil

import pytest

from common.errors import EXIT_BUG, EXIT_INFRA_ERROR, EXIT_KERNEL_FAILURE, EXIT_USER_ERROR
from tests.conftest import FIXTURES, ROOT, run_doit


def doit(*args):
    return run_doit("line=fake24", *args, env=dict(os.environ), check=False)


def output(result) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    return text


def test_bad_input_exits_3(fake24, isolated):
    fake24()
    fragment = isolated / "configs" / "cpu" / "athlon.config"
    fragment.write_text(fragment.read_text() + "CONFIG_MK7 = y\n")
    result = doit("config:athlon")
    assert result.returncode == EXIT_USER_ERROR
    assert f"user error: {fragment}:4: not a config line" in output(result)


def test_infrastructure_exits_4(fake24, isolated, monkeypatch):
    """Offline, with nothing in the download dir: the machine lacks the file."""
    fake24()
    monkeypatch.delenv("LTSP_MOSIX_OVERRIDE_FAKE24")
    hash_file = isolated / "configs" / "lines" / "fake24.hash"
    hash_file.write_text(f"sha256  {'ab' * 32}  linux-2.4.99.tar.bz2\n")
    monkeypatch.setenv("LTSP_MOSIX_OFFLINE", "1")
    result = doit("fetch")
    assert result.returncode == EXIT_INFRA_ERROR
    assert "infrastructure error: linux-2.4.99.tar.bz2 is not in the download dir" in output(result)


@pytest.fixture
def broken_tree(fake24, isolated, monkeypatch):
    """The fake 2.4 tree with a build step whose C file does not compile."""
    tree = isolated / "tree"
    shutil.copytree(FIXTURES / "fake24", tree)
    (tree / "broken.c").write_text("int main(void) { return missing_symbol; }\n")
    with (tree / "Makefile").open("a") as makefile:
        makefile.write("dep:\n\t@true\nbzImage:\n\t$(CC) -c broken.c -o broken.o\n")
    fake24()
    monkeypatch.setenv("LTSP_MOSIX_OVERRIDE_FAKE24", str(tree))
    return tree


def test_a_compile_error_in_the_kernel_exits_1(broken_tree):
    result = doit("kernel:pentium")
    assert result.returncode == EXIT_KERNEL_FAILURE
    text = output(result)
    assert "kernel failure: kernel:pentium: make bzImage failed (exit 2)" in text
    assert "'missing_symbol' undeclared" in text


BUGGY_DODO = """
from common import cli

cli.install()


def divide():
    return 1 / 0


def task_buggy():
    return {"actions": [cli.action(divide)]}
"""


def test_a_bug_exits_5_with_its_traceback_in_a_log(isolated):
    """Anything but the project's own errors is a bug: one line on the
    terminal, the traceback kept for the report.  A task file made for this
    test runs the project's task wrapper (the one dodo.py uses) on a step
    that divides by zero."""
    dodo = isolated / "dodo_buggy.py"
    dodo.write_text(BUGGY_DODO)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = run_doit("-f", str(dodo), "buggy", env=env, check=False)
    assert result.returncode == EXIT_BUG
    text = output(result)
    assert "bug: ZeroDivisionError: division by zero (traceback in" in text and "please report it" in text
    logs = list((isolated / "build" / "bugs").glob("*.log"))
    assert len(logs) == 1
    assert "Traceback" in logs[0].read_text() and "return 1 / 0" in logs[0].read_text()
