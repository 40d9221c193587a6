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
    result = pin_source(matches[0], hash_file=line.hash_file, keys_dir=keys_dir(), dl=paths.dl_dir())
    print(f"[pin {line.name}] {result.path.name}: sha256 {result.sha256}; {result.trust}", flush=True)


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


def boot_test_variant(line, variant) -> None:
    from kernels import boottest
    results = boottest.run_variant(line, variant)
    _write_line_report(line)
    failed = [r for r in results if not r.passed]
    if failed:
        details = "\n".join(f"  {r.name}: {r.verdict} {r.kind or ''} {r.console_line or ''} (log {r.log_path})"
                            for r in failed)
        raise UserError(f"boot-test:{variant.name}: {len(failed)} of {len(results)} boots failed\n{details}")


def _write_line_report(line):
    """The line's matrix, JUnit XML and Markdown over every variant booted so far."""
    from kernels import boottest
    from qemu.report import write_reports
    results = boottest.load_results(line, line.variants())
    return results, write_reports(results, paths.line_dir(line.name) / "boot") if results else {}


def boot_report(line) -> None:
    from qemu.report import format_table
    results, written = _write_line_report(line)
    if not results:
        raise UserError(f"boot-test {line.name}: no boot results yet")
    print(format_table(results))
    print("reports: " + ", ".join(str(p) for p in written.values()), flush=True)


def selected_variants(line, names: str) -> list:
    """`variants=pentium,p4` on the command line; all of the line's otherwise."""
    if not names:
        return line.variants()
    return [line.variant(name.strip()) for name in names.split(",") if name.strip()]


def release_line(line, variant_names: str, key: str, keyring: str) -> None:
    from kernels import boottest, release
    if not key or not keyring:
        raise UserError("release needs the signing key: doit release key=FINGERPRINT keyring=GNUPGHOME "
                        "(or LTSP_MOSIX_RELEASE_KEY / LTSP_MOSIX_RELEASE_KEYRING); the default keyring is never used")
    overlay = core_overlay(line)
    link = release.release(line, selected_variants(line, variant_names), key=key.replace(" ", "").upper(),
                           gnupghome=Path(keyring), initrd=boottest.initrd_path(line), overlay=overlay)
    for path in sorted(link.resolve().iterdir()):
        print(f"  {path.stat().st_size:>10}  {path.name}")
    print(f"[release {line.name}] published {link} -> {link.resolve().name}", flush=True)


def core_overlay(line) -> Path | None:
    """The node root overlay (ltsp_*_core) generated from configs/cluster.toml."""
    try:
        from rootfs import overlay
    except ImportError:
        return None
    return overlay.build_for_release(line, paths.line_dir(line.name) / "overlay")


def verify_release(directory: str, key: str, keys: str) -> None:
    from kernels import release
    if not directory or not key:
        raise UserError("verify-release needs dir=RELEASE_DIR key=FINGERPRINT [keys=DIR with <FPR>.asc]")
    keys_path = Path(keys) if keys else keys_dir()
    print(release.verify_release(Path(directory), key.replace(" ", "").upper(), keys_path), flush=True)


def cluster_file(name: str) -> Path:
    return Path(name) if name else configs_dir() / "cluster-qemu.toml"


def load_test_cluster(line, name: str):
    from rootfs.cluster import load_cluster
    cluster = load_cluster(cluster_file(name))
    return cluster if cluster.line_name == line.name else cluster.for_line(line.name)


def cluster_test(line, name: str) -> None:
    from qemu.cluster_test import built_kernels, default_state_dir, node_line, run_cluster_test
    cluster = load_test_cluster(line, name)
    results = run_cluster_test(cluster, built_kernels(cluster), default_state_dir(line.name))
    for result in results:
        print(node_line(result), flush=True)
    if not results.passed:
        raise UserError(f"cluster-test {line.name}: not every node came up and reached the others "
                        f"(logs under {default_state_dir(line.name)})")
