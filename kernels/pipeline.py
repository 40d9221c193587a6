"""The steps doit runs, one function each, with the paths they read and
write, so dodo.py stays a task graph only."""
import os
from pathlib import Path

from kernels import build, invariants, kconfig, paths, tree
from kernels.errors import UserError
from kernels.matrix import configs_dir


def keys_dir() -> Path:
    return configs_dir() / "keys"


def offline() -> bool:
    return os.environ.get("LTSP_MOSIX_OFFLINE", "0") not in ("", "0")


def sources_to_fetch(line) -> list:
    """With a local override the kernel tarball is not needed; upstream
    patches (openMosix) still are."""
    if tree.override_dir(line):
        return [s for s in line.sources if s.role != "kernel"]
    return list(line.sources)


def fetch_line(line) -> dict:
    from kernels.fetch import fetch_source
    if line.unsupported:
        raise UserError(f"line {line.name} cannot be built here: {line.unsupported}")
    results = {}
    for source in sources_to_fetch(line):
        result = fetch_source(source, hash_file=line.hash_file, keys_dir=keys_dir(),
                              dl=paths.dl_dir(), offline=offline())
        print(f"[fetch {line.name}] {source.file}: {result.trust}", flush=True)
        results[source.name] = result
    return results


def pin(line, source_name: str) -> None:
    from kernels.fetch import pin_source
    matches = [s for s in line.sources if s.name == source_name]
    if not matches:
        valid = ", ".join(s.name for s in line.sources)
        raise UserError(f"line {line.name} has no source {source_name!r}; valid sources: {valid}")
    pin_source(matches[0], hash_file=line.hash_file, keys_dir=keys_dir(), dl=paths.dl_dir())


def prepare_line(line) -> None:
    needed = [s for s in line.sources if s.role in ("kernel", "patch")]
    fetched = fetch_line(line) if needed else {}
    provenance = tree.prepare(line, fetched=fetched)
    state = "verified sources" if provenance.verified else tree.UNVERIFIED
    print(f"[prepare {line.name}] {tree.src_dir(line)} ready ({state}, "
          f"{len(provenance.patches)} patches)", flush=True)


def configure_variant(line, variant) -> None:
    path = kconfig.configure(line, variant)
    print(f"[config:{variant.name}] {path}: audit passed", flush=True)


def check_line(line) -> None:
    configs = {v.name: kconfig.final_config_path(line, v) for v in line.variants()}
    print(invariants.check_line(line.name, line.invariants, configs), flush=True)


def build_variant(line, variant) -> None:
    build.build(line, variant)
