"""Compose a variant's .config from fragments, run the kernel's own config
step non-interactively, and audit that every requested option landed (as
Yocto does after oldconfig: a dropped option is an error, not a warning)."""
import json
import re
import subprocess
from pathlib import Path

from common import paths
from common.errors import UserError
from kernels import matrix, toolchain, tree
from kernels.fragments import NOT_SET, Option, merge, parse_fragment, read_config_values, render
from kernels.runner import run_logged


def fragment_files(line, variant) -> list[Path]:
    """In merge order; later fragments win."""
    return [line.base_config, matrix.cpu_fragment(variant.cpu),
            matrix.nic_fragment(variant.nic), line.invariants]


def requested_options(line, variant) -> dict[str, Option]:
    return merge(*(parse_fragment(path) for path in fragment_files(line, variant)))


def final_config_path(line, variant) -> Path:
    return paths.variant_dir(line.name, variant.name) / "config"


def make_argv(line, variant, *targets: str) -> list[str]:
    argv = ["make", *toolchain.for_line(line).make_vars]
    if line.config_system == "kconfig":
        argv += ["-C", str(tree.src_dir(line)), f"O={tree.object_dir(line, variant)}"]
    return argv + list(targets)


def configure(line, variant) -> Path:
    """Write the final .config into the object dir and a copy to
    build/<line>/variants/<variant>/config; return the copy's path."""
    requested = requested_options(line, variant)
    objdir = tree.recovered_object_dir(line, variant, f"config:{variant.name}")
    objdir.mkdir(parents=True, exist_ok=True)
    log = paths.variant_dir(line.name, variant.name) / "config.log"
    log.write_text("")
    label = f"config:{variant.name}"
    start = _start_options(line, variant, objdir, log, label)
    dot_config = objdir / ".config"
    paths.atomic_write_text(dot_config, render(merge(start, requested)))
    if line.config_system == "kconfig":
        run_logged(make_argv(line, variant, "olddefconfig"), log=log, label=label,
                   stage="olddefconfig", quiet=True)
    else:
        _cml1_oldconfig(line, variant, objdir, log)
    audit(variant, requested, read_config_values(dot_config))
    final = final_config_path(line, variant)
    paths.atomic_write_bytes(final, dot_config.read_bytes())
    return final


def _start_options(line, variant, objdir: Path, log: Path, label: str) -> dict[str, Option]:
    """What the fragments go on top of: `make tinyconfig` (kbuild) or the
    tree's full defconfig (CML1 has no olddefconfig, so every question of
    config.in needs an answer from the start)."""
    if line.config_system == "kconfig":
        return parse_fragment(_base_target_config(line, variant, objdir, log, label), strict=False)
    defconfig = objdir / line.base_defconfig
    if not defconfig.is_file():
        raise UserError(f"line {line.name}: base defconfig {defconfig} is missing from the tree")
    return parse_fragment(defconfig, strict=False)


def _base_target_config(line, variant, objdir: Path, log: Path, label: str) -> Path:
    """`make tinyconfig` reads only the tree and the toolchain, so it gives
    every variant of the line the same start: it runs once per line and
    prepared tree, and build/<line>/<target>.config keeps its result beside
    what it was made from (the make command, the compiler's version, the
    tree's stamp)."""
    argv = make_argv(line, variant, line.base_target)
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


def reapply_config(line, variant, objdir: Path) -> None:
    """Put the variant's audited config into a (seeded) 2.4 tree and run
    oldconfig again, which regenerates include/linux/autoconf.h from it;
    the result must still be the audited config."""
    final = final_config_path(line, variant)
    label = f"kernel:{variant.name}"
    paths.atomic_write_bytes(objdir / ".config", final.read_bytes())
    log = paths.variant_dir(line.name, variant.name) / "config.log"
    with log.open("a") as out:
        out.write(f"--- {label}: oldconfig again in the seeded tree\n")
    _cml1_oldconfig(line, variant, objdir, log)
    if (objdir / ".config").read_bytes() != final.read_bytes():
        raise UserError(f"{label}: oldconfig in the seeded tree changed the audited config {final} "
                        f"(log: {log}); run doit config:{variant.name}")


NEW_QUESTION = re.compile(r"\((CONFIG_[A-Za-z0-9_]+)\)[^\n]*\n?\(NEW\)")


def _cml1_oldconfig(line, variant, objdir: Path, log: Path) -> None:
    """scripts/Configure -d answers from .config and asks only NEW
    questions; with stdin at EOF its `read` fails and it exits 1, so a
    question no fragment answers stops the build instead of hanging."""
    result = subprocess.run(make_argv(line, variant, "oldconfig"), cwd=objdir, stdin=subprocess.DEVNULL,
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


def audit(variant, requested: dict[str, Option], final: dict[str, str]) -> None:
    """Every requested option must be in the final .config with the
    requested value; absent counts as not set."""
    problems = []
    for option in requested.values():
        got = final.get(option.name, NOT_SET)
        if got != option.value:
            shown = "absent" if option.name not in final else _show(got)
            problems.append(f"  {option.name}: requested {_show(option.value)}, final {shown} "
                            f"(asked at {option.origin})")
    if problems:
        raise UserError(f"config audit failed for variant {variant.name}: "
                        f"{len(problems)} option(s) did not land\n" + "\n".join(problems))


def _show(value: str) -> str:
    return "not set" if value == NOT_SET else value
