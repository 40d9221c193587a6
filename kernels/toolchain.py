"""Toolchains per line: which tools a build needs (and which Debian package
provides each), the make variables, and a version record.  Checked before
anything runs, as LAVA validates an action's inputs."""
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernels.errors import InfraError

# tool -> Debian package that provides it
KBUILD_TOOLS = {"gcc": "gcc", "make": "make", "ld": "binutils", "as": "binutils",
                "flex": "flex", "bison": "bison", "bc": "bc", "perl": "perl-base"}
CML1_TOOLS = {"gcc": "gcc", "make": "make", "ld": "binutils", "as": "binutils",
              "bash": "bash", "perl": "perl-base"}

# gcc 12 building 2.4 code: see patches/linux-2.4.22/series for the source
# side; these flags restore the old compilers' defaults.
# -fmacro-prefix-map keeps __FILE__ free of the tree's path (reproducible
# wherever the tree is; 2.4 exports TOPDIR to every sub-make).
GCC12_FOR_24_FLAGS = ("-m32 -std=gnu89 -fgnu89-inline -fno-pie -fno-pic -fno-stack-protector "
                      "-fcf-protection=none -fno-strict-aliasing -fno-strict-overflow "
                      "-fno-delete-null-pointer-checks -fno-builtin-sprintf "
                      "-fno-tree-loop-distribute-patterns -fno-toplevel-reorder "
                      "-fno-optimize-sibling-calls -fno-asynchronous-unwind-tables "
                      "-mno-mmx -mno-sse -mno-sse2 -mno-3dnow -fmacro-prefix-map=$(TOPDIR)/=")


@dataclass(frozen=True)
class Toolchain:
    name: str
    tools: dict
    make_vars: tuple[str, ...]      # VAR=value for every make call

    def check(self) -> None:
        for tool, package in self.tools.items():
            if shutil.which(tool) is None:
                raise InfraError(f"{tool} not found: install the Debian package {package!r}")
        _check_gcc_m32()

    def versions(self) -> dict[str, str]:
        return {tool: first_line([tool, "--version"]) for tool in ("gcc", "ld", "make")}


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "absent"
    return out.splitlines()[0] if out else "unknown"


def _check_gcc_m32() -> None:
    """32-bit code needs gcc-multilib's crt files and headers on amd64."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("#include <stdint.h>\nint main(void) { return sizeof(void *) == 4 ? 0 : 1; }\n")
        result = subprocess.run(["gcc", "-m32", "-o", str(Path(tmp) / "probe"), str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise InfraError("gcc cannot build 32-bit code (gcc -m32 failed): install the Debian "
                             f"package 'gcc-multilib'\n{result.stderr.strip()[-400:]}")


def compiler_prefix() -> list[str]:
    """ccache by default when installed; distcc when DISTCC_HOSTS is set.
    LTSP_MOSIX_CCACHE=0 turns ccache off."""
    use_ccache = shutil.which("ccache") and os.environ.get("LTSP_MOSIX_CCACHE", "1") != "0"
    use_distcc = bool(os.environ.get("DISTCC_HOSTS"))
    if use_distcc and shutil.which("distcc") is None:
        raise InfraError("DISTCC_HOSTS is set but distcc is not installed: install the Debian package 'distcc'")
    if use_ccache:
        return ["ccache"]   # with distcc, CCACHE_PREFIX=distcc (see build_env)
    return ["distcc"] if use_distcc else []


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    if env.get("DISTCC_HOSTS") and "ccache" in compiler_prefix():
        env["CCACHE_PREFIX"] = "distcc"
    return env


def parallel_jobs() -> int:
    if os.environ.get("DISTCC_HOSTS") and shutil.which("distcc"):
        out = subprocess.run(["distcc", "-j"], capture_output=True, text=True).stdout.strip()
        if out.isdigit():
            return max(int(out), os.cpu_count() or 1)
    return int(os.environ.get("LTSP_MOSIX_JOBS", os.cpu_count() or 1))


def for_line(line) -> Toolchain:
    prefix = " ".join(compiler_prefix())
    cc = f"{prefix} gcc".strip()
    if line.toolchain == "gcc-m32":
        return Toolchain("gcc-m32", KBUILD_TOOLS, (f"ARCH={line.arch}", f"CC={cc}"))
    if line.toolchain == "gcc-m32-2.4":
        return Toolchain("gcc-m32-2.4", CML1_TOOLS, (
            f"ARCH={line.arch}", f"CC={cc} {GCC12_FOR_24_FLAGS}", "LD=ld -m elf_i386",
            "AS=as --32", "HOSTCC=gcc",
            # the boot sector's root device would otherwise be the build host's
            "ROOT_DEV=FLOPPY"))
    raise InfraError(f"line {line.name}: unknown toolchain {line.toolchain!r}")
