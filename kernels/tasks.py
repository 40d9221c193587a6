"""Task bodies of the sources/trees/configs/builds stage (doit fetch, pin,
prepare, config, check, kernel): one function each, so dodo.py stays a
task graph only."""
import os
from pathlib import Path

from common import paths
from common.errors import UserError
from common.hashing import cached_sha256
from common.paths import configs_dir
from kernels import build, buildsystem, hashes, invariants, kconfig, tree
from kernels.debsource import installed_version
from kernels.fetch import fetch_source, pin_source


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
    matches = [s for s in line.sources if s.name == source_name]
    if not matches:
        valid = ", ".join(s.name for s in line.sources)
        raise UserError(f"line {line.name} has no source {source_name!r}; valid sources: {valid}")
    result = pin_source(matches[0], hash_file=line.hash_file, keys_dir=keys_dir(), dl=paths.dl_dir())
    print(f"[pin {line.name}] {result.path.name}: sha256 {result.sha256}; {result.trust}", flush=True)


def source_identity(line) -> dict:
    """What the prepared tree is made of, cheaply: the pinned sha256 of each
    source, the Debian package version and file sha256 of a packaged one
    (an `apt upgrade` of linux-source-6.1 then re-prepares), the override
    folder.  doit prepare reruns when this changes."""
    identity = {}
    for source in sources_to_fetch(line) if not line.unsupported else []:
        if source.trust == "debian-package":
            identity[source.name] = {"package": installed_version(source),
                                     "sha256": cached_sha256(Path(source.path))}
        else:
            identity[source.name] = hashes.pinned_sha256(line.hash_file, source.file)
    return identity


def prepare_line(line) -> None:
    paths.check_build_path()           # before a download or an unpack, not after
    needed = [s for s in line.sources if s.role in ("kernel", "patch")]
    fetched = fetch_line(line) if needed else {}
    provenance = tree.prepare(line, fetched=fetched, shared=buildsystem.for_line(line).shares_prepared_tree)
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
