"""Cluster invariants: every variant of a line must carry exactly the
line's invariant block.  Nodes whose Mosix options differ refuse to talk
to each other or crash the cluster, so a difference fails the line."""
from pathlib import Path

from common.errors import UserError
from kernels.fragments import NOT_SET, parse_fragment, read_config_values

MOSIX_PREFIXES = ("CONFIG_MOSIX", "CONFIG_openMosix")


def compared_options(invariant_file: Path, finals: dict[str, dict[str, str]]) -> list[str]:
    """The invariant block's options, plus any Mosix option that appears in
    any variant (an extra one outside the block splits the cluster too)."""
    names = list(parse_fragment(invariant_file))
    for values in finals.values():
        names += [n for n in values if n.startswith(MOSIX_PREFIXES) and n not in names]
    return names


def differences(invariant_file: Path, finals: dict[str, dict[str, str]]) -> list[tuple[str, dict[str, list[str]]]]:
    """[(option, {value: [variants]})] for every option whose value is not
    the same on all variants, or not the block's value."""
    block = {name: option.value for name, option in parse_fragment(invariant_file).items()}
    rows = []
    for name in compared_options(invariant_file, finals):
        by_value: dict[str, list[str]] = {}
        for variant, values in sorted(finals.items()):
            by_value.setdefault(values.get(name, NOT_SET), []).append(variant)
        expected = block.get(name)
        if len(by_value) > 1 or (expected is not None and set(by_value) != {expected}):
            rows.append((name, by_value))
    return rows


def table(rows, block: dict[str, str]) -> str:
    lines = [f"{'option':<34} {'value':<10} variants", "-" * 78]
    for name, by_value in rows:
        first = True
        for value, variants in sorted(by_value.items(), key=lambda item: -len(item[1])):
            mark = " (block)" if block.get(name) == value else ""
            shown = "not set" if value == NOT_SET else value
            lines.append(f"{name if first else '':<34} {shown + mark:<10} {', '.join(variants)}")
            first = False
    return "\n".join(lines)


def check_line(line_name: str, invariant_file: Path, config_files: dict[str, Path]) -> str:
    """Raise UserError with the difference table; return a summary if clean."""
    missing = [v for v, path in config_files.items() if not path.is_file()]
    if missing:
        raise UserError(f"check {line_name}: no final .config for {', '.join(missing)} "
                        f"(run doit config first)")
    finals = {variant: read_config_values(path) for variant, path in config_files.items()}
    rows = differences(invariant_file, finals)
    block = {n: o.value for n, o in parse_fragment(invariant_file).items()}
    if rows:
        raise UserError(f"check {line_name}: cluster-invariant options differ between variants "
                        f"(block: {invariant_file})\n{table(rows, block)}")
    return (f"check {line_name}: {len(finals)} variants share the invariant block "
            f"({len(block)} options from {invariant_file.name})")
