"""Toolchains per line, as data (configs/toolchains/<name>.toml, the way
TuxMake keeps its toolchains): which tools a build needs (and which Debian
package provides each), the make variables, and a version record.  Checked
before anything runs, as LAVA validates an action's inputs."""
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import paths
from common.data import read_toml, require
from common.errors import InfraError, UserError
from common.paths import configs_dir
from kernels import tree


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
    """The environment of make.  With ccache, CCACHE_BASEDIR is the build
    folder: ccache turns the absolute paths of a compiler line into paths
    relative to make's working folder, so a build folder that moved (a new
    test run, a second checkout) still hits the cache."""
    env = dict(os.environ)
    if "ccache" in compiler_prefix():
        env.setdefault("CCACHE_BASEDIR", str(paths.build_dir()))
        if env.get("DISTCC_HOSTS"):
            env["CCACHE_PREFIX"] = "distcc"
    return env


def parallel_jobs() -> int:
    """make -j: LTSP_MOSIX_JOBS when set, else distcc's host count (with
    DISTCC_HOSTS), else the core count."""
    if os.environ.get("LTSP_MOSIX_JOBS"):
        value = os.environ["LTSP_MOSIX_JOBS"]
        if not value.isdigit() or int(value) < 1:
            raise UserError(f"LTSP_MOSIX_JOBS={value!r}: must be a positive whole number")
        return int(value)
    if os.environ.get("DISTCC_HOSTS") and shutil.which("distcc"):
        out = subprocess.run(["distcc", "-j"], capture_output=True, text=True).stdout.strip()
        if out.isdigit():
            return max(int(out), os.cpu_count() or 1)
    return os.cpu_count() or 1


def toolchain_file(name: str) -> Path:
    return configs_dir() / "toolchains" / f"{name}.toml"


def for_line(line) -> Toolchain:
    path = toolchain_file(line.toolchain)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.toml")))
        raise UserError(f"line {line.name}: unknown toolchain {line.toolchain!r} (no {path}; "
                        f"known: {known})")
    data = read_toml(path)
    tools = require(data, "tools", dict, path)
    templates = require(data, "make_vars", list, path)
    # The maps stand on every compiler line, with ccache or without: the
    # two lines then differ by the "ccache" word alone.
    cc = " ".join(compiler_prefix() + ["gcc"] + _relative_macro_maps(line, data, path))
    try:
        make_vars = tuple(str(t).format(arch=line.arch, cc=cc) for t in templates)
    except (KeyError, IndexError) as error:
        raise UserError(f"{path}: make_vars: unknown placeholder {error} "
                        f"(known: {{arch}}, {{cc}})") from None
    return Toolchain(line.toolchain, {str(k): str(v) for k, v in tools.items()}, make_vars)


def _relative_macro_maps(line, data: dict, path: Path) -> list[str]:
    """-fmacro-prefix-map options for the relative paths ccache's base
    folder writes (configs/toolchains: ccache_relative_maps): __FILE__ then
    names a file as the absolute path's map does, and a kernel built through
    ccache has the bytes of one built without it."""
    maps = require(data, "ccache_relative_maps", list, path)
    # kbuild compiles in a variant's O= folder; every variant's is as far
    # from the source tree
    source = os.path.relpath(tree.src_dir(line), tree.kbuild_object_dir(line.name, "any"))
    try:
        return [f"-fmacro-prefix-map={str(m).format(source_from_objects=source)}=" for m in maps]
    except (KeyError, IndexError) as error:
        raise UserError(f"{path}: ccache_relative_maps: unknown placeholder {error} "
                        f"(known: {{source_from_objects}})") from None
