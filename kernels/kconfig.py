"""Compose a variant's .config from fragments, run the kernel's own config
step non-interactively, and audit that every requested option landed (as
Yocto does after oldconfig: a dropped option is an error, not a warning)."""
from pathlib import Path

from common import paths
from common.errors import UserError
from kernels import buildsystem, matrix
from kernels.fragments import NOT_SET, Option, merge, parse_fragment, read_config_values, render


def fragment_files(line, variant) -> list[Path]:
    """In merge order; later fragments win."""
    return [line.base_config, matrix.cpu_fragment(variant.cpu),
            matrix.nic_fragment(variant.nic), line.invariants]


def requested_options(line, variant) -> dict[str, Option]:
    return merge(*(parse_fragment(path) for path in fragment_files(line, variant)))


def final_config_path(line, variant) -> Path:
    return paths.variant_dir(line.name, variant.name) / "config"


def configure(line, variant) -> Path:
    """Write the final .config into the object dir and a copy to
    build/<line>/variants/<variant>/config; return the copy's path."""
    requested = requested_options(line, variant)
    system = buildsystem.for_line(line)
    objdir = system.recovered_object_dir(line, variant, f"config:{variant.name}")
    objdir.mkdir(parents=True, exist_ok=True)
    log = paths.variant_dir(line.name, variant.name) / "config.log"
    log.write_text("")
    label = f"config:{variant.name}"
    start = system.start_options(line, variant, objdir, log, label)
    dot_config = objdir / ".config"
    paths.atomic_write_text(dot_config, render(merge(start, requested)))
    system.complete_config(line, variant, objdir, log, label)
    audit(variant, requested, read_config_values(dot_config))
    final = final_config_path(line, variant)
    paths.atomic_write_bytes(final, dot_config.read_bytes())
    return final


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
