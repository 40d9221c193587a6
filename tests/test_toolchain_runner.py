"""Toolchain checks name the Debian package; a failing command reports its
last error lines and the log path."""
import os

import pytest

from common.errors import InfraError, KernelFailure, UserError
from kernels import matrix, toolchain
from kernels.runner import run_logged


def path_without(tmp_path, missing: str) -> str:
    """A PATH of symlinks to every tool the checks look for, except one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    needed = {tool for line in ("linux-6.1", "linux-2.4.22")
              for tool in toolchain.for_line(matrix.load_line(line)).tools}
    for tool in needed | {"sh", "ccache"}:
        real = next((os.path.join(d, tool) for d in os.environ["PATH"].split(":")
                     if os.path.exists(os.path.join(d, tool))), None)
        if real and tool != missing:
            (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


@pytest.mark.parametrize("tool, package", [("flex", "flex"), ("bison", "bison"), ("ld", "binutils"),
                                           ("bc", "bc")])
def test_missing_tool_names_its_debian_package(tmp_path, monkeypatch, tool, package):
    monkeypatch.setenv("PATH", path_without(tmp_path, tool))
    chain = toolchain.for_line(matrix.load_line("linux-6.1"))
    with pytest.raises(InfraError, match=rf"{tool} not found: install the Debian package '{package}'"):
        chain.check()


def test_toolchain_of_each_generation():
    assert "ARCH=i386" in toolchain.for_line(matrix.load_line("linux-6.1")).make_vars
    chain = toolchain.for_line(matrix.load_line("linux-2.4.22"))
    assert "LD=ld -m elf_i386" in chain.make_vars and "AS=as --32" in chain.make_vars
    assert any(v.startswith("CC=") and "-m32" in v and "-std=gnu89" in v for v in chain.make_vars)


def test_distcc_without_distcc_installed_is_an_infra_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without(tmp_path, "distcc"))
    monkeypatch.setenv("DISTCC_HOSTS", "127.0.0.1")
    with pytest.raises(InfraError, match="install the Debian package 'distcc'"):
        toolchain.compiler_prefix()


def test_failed_command_reports_error_lines_and_log(tmp_path):
    script = "echo compiling a.c; echo 'a.c:3: error: expected ;' ; echo more; exit 2"
    log = tmp_path / "build.log"
    with pytest.raises(UserError) as error:
        run_logged(["sh", "-c", script], log=log, label="kernel:x", stage="make bzImage", quiet=True)
    message = str(error.value)
    assert "kernel:x: make bzImage failed (exit 2)" in message
    assert "a.c:3: error: expected ;" in message and f"full log: {log}" in message
    assert "compiling a.c" in log.read_text()


@pytest.mark.parametrize("output", [
    "gcc: fatal error: Killed signal terminated program cc1",
    "fs/nfs/write.c:1: fatal error: error writing to ccX.s: No space left on device",
    "cc1: out of memory allocating 65536 bytes"])
def test_a_compiler_killed_or_a_full_disk_is_the_machines_fault(tmp_path, output):
    with pytest.raises(InfraError, match="make bzImage failed .exit 2. .*" + output.split(":")[-1].strip()):
        run_logged(["sh", "-c", f"echo '{output}'; exit 2"], log=tmp_path / "l", label="kernel:x",
                   stage="make bzImage", quiet=True, error_class=KernelFailure)


def test_a_compile_error_is_the_kernels_failure(tmp_path):
    with pytest.raises(KernelFailure, match="a.c:3: error"):
        run_logged(["sh", "-c", "echo 'a.c:3: error: expected ;'; exit 2"], log=tmp_path / "l",
                   label="kernel:x", stage="make bzImage", quiet=True, error_class=KernelFailure)


def test_a_command_killed_by_a_signal_is_the_machines_fault(tmp_path):
    with pytest.raises(InfraError, match="killed by signal 9"):
        run_logged(["sh", "-c", "kill -9 $$"], log=tmp_path / "l", label="kernel:x",
                   stage="make bzImage", quiet=True, error_class=KernelFailure)


def test_toolchains_are_data_and_a_bad_file_names_the_field(isolated):
    chains = isolated / "configs" / "toolchains"
    (chains / "gcc-m32.toml").write_text('make_vars = "ARCH={arch}"\n[tools]\ngcc = "gcc"\n')
    with pytest.raises(UserError, match=r"gcc-m32.toml: field 'make_vars' must be a list"):
        toolchain.for_line(matrix.load_line("linux-6.1"))
    (chains / "gcc-m32.toml").write_text('make_vars = ["CC={cc}"]\n[tools]\ngcc = "gcc"\n')
    with pytest.raises(UserError, match=r"gcc-m32.toml: missing field 'ccache_relative_maps'"):
        toolchain.for_line(matrix.load_line("linux-6.1"))
    (chains / "gcc-m32.toml").write_text('make_vars = ["CC={cc}"]\nccache_relative_maps = ["{src}/"]\n'
                                         '[tools]\ngcc = "gcc"\n')
    with pytest.raises(UserError, match=r"gcc-m32.toml: ccache_relative_maps: unknown placeholder 'src'"):
        toolchain.for_line(matrix.load_line("linux-6.1"))
    (chains / "gcc-m32.toml").write_text('make_vars = ["CC={compiler}"]\nccache_relative_maps = []\n'
                                         '[tools]\ngcc = "gcc"\n')
    with pytest.raises(UserError, match=r"gcc-m32.toml: make_vars: unknown placeholder 'compiler'"):
        toolchain.for_line(matrix.load_line("linux-6.1"))
    (chains / "gcc-m32.toml").unlink()
    with pytest.raises(UserError, match=r"unknown toolchain 'gcc-m32' .*known: gcc-64, gcc-m32-2.4"):
        toolchain.for_line(matrix.load_line("linux-6.1"))


def test_ccache_gets_the_build_folder_as_base_and_maps_for_its_relative_paths(isolated, monkeypatch):
    """A moved build folder still hits ccache (CCACHE_BASEDIR), and __FILE__
    of a path ccache made relative is named as the absolute one is."""
    monkeypatch.delenv("CCACHE_BASEDIR", raising=False)
    monkeypatch.setenv("LTSP_MOSIX_CCACHE", "1")
    line61, line24 = matrix.load_line("linux-6.1"), matrix.load_line("linux-2.4.22")
    assert toolchain.compiler_prefix() == ["ccache"], "setup.sh installs ccache"
    assert toolchain.build_env()["CCACHE_BASEDIR"] == str(isolated / "build")
    cc61 = next(v for v in toolchain.for_line(line61).make_vars if v.startswith("CC="))
    assert "-fmacro-prefix-map=../../../src/=" in cc61.split()
    cc24 = next(v for v in toolchain.for_line(line24).make_vars if v.startswith("CC="))
    words = cc24.split()
    relative = [w for w in words if w.startswith("-fmacro-prefix-map=../")]
    assert relative == sorted(relative, key=len) and len(relative) == 6    # gcc tries the last map first
    assert words.index(relative[-1]) < words.index("-fmacro-prefix-map=$(TOPDIR)/=")


def test_jobs_setting_wins_over_distcc(monkeypatch):
    monkeypatch.setenv("DISTCC_HOSTS", "127.0.0.1/8 10.0.0.2/8")
    monkeypatch.setenv("LTSP_MOSIX_JOBS", "3")
    assert toolchain.parallel_jobs() == 3
    monkeypatch.setenv("LTSP_MOSIX_JOBS", "many")
    with pytest.raises(UserError, match="LTSP_MOSIX_JOBS='many'"):
        toolchain.parallel_jobs()


def test_missing_program_is_an_infra_error(tmp_path):
    with pytest.raises(InfraError, match="cannot run 'no-such-make'"):
        run_logged(["no-such-make"], log=tmp_path / "l", label="kernel:x", stage="make", quiet=True)


def test_daemon_that_exits_before_ready_names_status_and_log(tmp_path):
    import subprocess

    from lab.spawn import wait_for_daemon
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["sh", "-c", "echo 'cannot bind port 2049' >&2; exit 3"], stderr=out)
    with pytest.raises(InfraError, match=r"(?s)ganesha exited with status 3.*cannot bind port 2049"):
        wait_for_daemon(proc, "ganesha", lambda: False, timeout=30, logs=(log,))


def test_daemon_not_ready_in_time_is_an_infra_error(tmp_path):
    import subprocess

    from lab.spawn import stop_process, wait_for_daemon
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(InfraError, match="dnsmasq was not ready within 0 s"):
            wait_for_daemon(proc, "dnsmasq", lambda: False, timeout=0.3)
    finally:
        stop_process(proc)
    assert proc.returncode is not None, "stopped and reaped"
