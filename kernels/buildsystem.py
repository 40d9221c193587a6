"""The kernel build systems, one object each, chosen by the line's data
(`config_system` in configs/lines/<line>.toml).  Each owns what differs:

                  Kbuild (6.1)                     CML1 (2.4)
  objects         obj/ beside a read-only src/     a hard-link copy of src/ per
                  (make -C src O=obj): one         variant (2.4 has no O=),
                  prepared tree for every line     sources and objects together
                  with the same sources
  config start    `make tinyconfig`, once per      the tree's defconfig (CML1
                  line and prepared tree           has no olddefconfig)
  config step     make olddefconfig                make oldconfig, stdin at EOF
  build stages    bzImage                          dep, bzImage; .version at 0
  environment     -                                gzip -n shim on PATH
  seeding         the base's objects and the       the base's tree, its absolute
                  variant's .config                path rewritten, headers dated
                                                   older, oldconfig again

Nothing outside this module asks which build system a line has."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from common import paths
from common.errors import UserError
from kernels import toolchain, tree
from kernels.fragments import Option, parse_fragment
from kernels.runner import run_logged

SHIMS = paths.PROJECT_ROOT / "kernels" / "shims"
NEW_QUESTION = re.compile(r"\((CONFIG_[A-Za-z0-9_]+)\)[^\n]*\n?\(NEW\)")


class BuildSystem:
    name = ""
    shares_prepared_tree = False        # builds only read src/: one tree for lines with the same sources
    stages: tuple[str, ...] = ("bzImage",)

    def object_dir(self, line, variant) -> Path:
        """The directory holding .config and the build products."""
        raise NotImplementedError

    def make_argv(self, line, variant, *targets: str) -> list[str]:
        return ["make", *toolchain.for_line(line).make_vars, *self._location(line, variant), *targets]

    def _location(self, line, variant) -> list[str]:
        return []

    def recovered_object_dir(self, line, variant, label: str) -> Path:
        return tree.recover_object_dir(self.object_dir(line, variant), label)

    def start_options(self, line, variant, objdir: Path, log: Path, label: str) -> dict[str, Option]:
        """What the fragments go on top of."""
        raise NotImplementedError

    def complete_config(self, line, variant, objdir: Path, log: Path, label: str) -> None:
        """Let the build system answer every option the fragments left open."""
        raise NotImplementedError

    def prepare_build(self, objdir: Path) -> None:
        """Anything the object dir needs before make runs."""

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return env

    def seed(self, line, variant, source: Path, staging: Path, objdir: Path, copy_tree, final_config: Path) -> int:
        """Copy a base variant's finished objects (source) into staging for
        objdir; returns the number of files copied."""
        raise NotImplementedError


class Kbuild(BuildSystem):
    name = "kconfig"
    shares_prepared_tree = True

    def object_dir(self, line, variant) -> Path:
        return tree.kbuild_object_dir(line.name, variant.name)

    def _location(self, line, variant) -> list[str]:
        return ["-C", str(tree.src_dir(line)), f"O={self.object_dir(line, variant)}"]

    def start_options(self, line, variant, objdir, log, label):
        return parse_fragment(self._base_target_config(line, variant, objdir, log, label), strict=False)

    def _base_target_config(self, line, variant, objdir: Path, log: Path, label: str) -> Path:
        """`make tinyconfig` reads only the tree and the toolchain, so it
        gives every variant of the line the same start: it runs once per
        line and prepared tree, and build/<line>/<target>.config keeps its
        result beside what it was made from (the make command, the
        compiler's version, the tree's stamp)."""
        argv = self.make_argv(line, variant, line.base_target)
        made_from = json.dumps({"make": [a for a in argv if not a.startswith("O=")],
                                "gcc": toolchain.first_line(["gcc", "--version"]),
                                "tree": tree.stamp_path(line).read_text()}, sort_keys=True)
        kept = paths.line_dir(line.name) / f"{line.base_target}.config"
        stamp = kept.with_name(kept.name + ".from")
        if kept.is_file() and stamp.is_file() and stamp.read_text() == made_from:
            with log.open("a") as out:
                out.write(f"# {line.base_target}: the line's, made once ({kept})\n")
            return kept
        run_logged(argv, log=log, label=label, stage=line.base_target, quiet=True)
        stamp.unlink(missing_ok=True)        # never a stamp beside another run's config
        paths.atomic_write_bytes(kept, (objdir / ".config").read_bytes())
        paths.atomic_write_text(stamp, made_from)
        return kept

    def complete_config(self, line, variant, objdir, log, label):
        run_logged(self.make_argv(line, variant, "olddefconfig"), log=log, label=label,
                   stage="olddefconfig", quiet=True)

    def seed(self, line, variant, source, staging, objdir, copy_tree, final_config):
        copied = copy_tree(source, staging, shared=None)
        # kbuild's syncconfig notices the new .config at the build itself.
        (staging / ".config").write_bytes(final_config.read_bytes())
        return copied


class Cml1(BuildSystem):
    name = "cml1"
    stages = ("dep", "bzImage")

    def object_dir(self, line, variant) -> Path:
        return self.variant_tree(line, variant)

    def variant_tree(self, line, variant) -> Path:
        """A hard-link copy of src per variant; make replaces files rather
        than writing into them, so src stays pristine, except headers,
        which make dep touches: each tree has its own copies."""
        workdir = paths.variant_dir(line.name, variant.name)
        copy = workdir / "tree"
        stamp = workdir / "tree.from"
        source_id = tree.stamp_path(line).read_text()
        if copy.is_dir() and stamp.is_file() and stamp.read_text() == source_id:
            return copy
        stamp.unlink(missing_ok=True)       # a copy cut short must not pass for complete
        shutil.rmtree(copy, ignore_errors=True)
        copy.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(tree.src_dir(line)), str(copy)], check=True)
        tree.unshare_headers(copy)
        paths.atomic_write_text(stamp, source_id)
        return copy

    def recovered_object_dir(self, line, variant, label):
        # the tree also holds the sources, which 2.4's make touches: those stay
        return tree.recover_object_dir(self.object_dir(line, variant), label, sources=tree.src_dir(line))

    def start_options(self, line, variant, objdir, log, label):
        defconfig = objdir / line.base_defconfig
        if not defconfig.is_file():
            raise UserError(f"line {line.name}: base defconfig {defconfig} is missing from the tree")
        return parse_fragment(defconfig, strict=False)

    def complete_config(self, line, variant, objdir, log, label):
        """scripts/Configure -d answers from .config and asks only NEW
        questions; with stdin at EOF its `read` fails and it exits 1, so a
        question no fragment answers stops the build instead of hanging."""
        result = subprocess.run(self.make_argv(line, variant, "oldconfig"), cwd=objdir, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, errors="replace")
        with log.open("a") as out:
            out.write(result.stdout + result.stderr)
        if result.returncode == 0:
            return
        asked = NEW_QUESTION.findall(result.stdout)
        if asked:
            raise UserError(f"config:{variant.name}: make oldconfig asked about {asked[-1]}, which no fragment "
                            f"answers; add it to {line.base_config} or a CPU/NIC fragment (log: {log})")
        raise UserError(f"config:{variant.name}: make oldconfig failed (exit {result.returncode}):\n"
                        f"{(result.stdout + result.stderr).strip()[-600:]}\nlog: {log}")

    def prepare_build(self, objdir: Path) -> None:
        (objdir / ".version").write_text("0\n")      # 2.4 bumps it on every link: the build is #1

    def environment(self, env):
        return {**env, "PATH": f"{SHIMS}:{env['PATH']}"}      # gzip -n (see kernels/shims/gzip)

    def seed(self, line, variant, source, staging, objdir, copy_tree, final_config):
        # 2.4 builds in the tree and records its absolute path in each
        # object's flags (.*.o.flags: -I<tree>/include) and dependency
        # lists: they name the variant's own tree in the copy, or make
        # would take every object for out of date.
        copied = copy_tree(source, staging, shared=tree.src_dir(line),
                           rewrite=(str(source).encode(), str(objdir).encode()))
        settle_headers(staging)
        # 2.4's oldconfig writes include/linux/autoconf.h from the variant's
        # config; make dep's split-include then touches the changed
        # include/config/*.h, which is what makes make rebuild their users.
        self.reapply_config(line, variant, staging, final_config)
        return copied

    def reapply_config(self, line, variant, objdir: Path, final: Path) -> None:
        """Put the variant's audited config into a (seeded) tree and run
        oldconfig again, which regenerates include/linux/autoconf.h from
        it; the result must still be the audited config."""
        label = f"kernel:{variant.name}"
        paths.atomic_write_bytes(objdir / ".config", final.read_bytes())
        log = paths.variant_dir(line.name, variant.name) / "config.log"
        with log.open("a") as out:
            out.write(f"--- {label}: oldconfig again in the seeded tree\n")
        self.complete_config(line, variant, objdir, log, label)
        if (objdir / ".config").read_bytes() != final.read_bytes():
            raise UserError(f"{label}: oldconfig in the seeded tree changed the audited config {final} "
                            f"(log: {log}); run doit config:{variant.name}")


def settle_headers(root: Path) -> int:
    """Date every header of a finished 2.4 tree just before its oldest
    object.  2.4's make dep touches a header whenever one it includes is
    newer (.hdepend), and one pass leaves such pairs behind, so a second
    make in the same tree would touch headers again and recompile what
    includes them.  In a finished build every object was compiled from the
    headers' final content, so dating them older loses nothing; the
    variant's changed options then make split-include touch just their
    include/config/*.h, newer than everything, as it should."""
    headers, oldest = [], None
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            if name.endswith(".h"):
                headers.append(path)
            elif name.endswith(".o"):
                mtime = path.stat().st_mtime_ns
                oldest = mtime if oldest is None else min(oldest, mtime)
    if oldest is None:
        return 0
    for path in headers:
        os.utime(path, ns=(oldest - 1_000_000_000, oldest - 1_000_000_000))
    return len(headers)


SYSTEMS: dict[str, BuildSystem] = {system.name: system for system in (Kbuild(), Cml1())}


def for_line(line) -> BuildSystem:
    return SYSTEMS[line.config_system]
