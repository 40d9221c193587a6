"""Task bodies of the lab stage (doit boot-test, boot-test:report,
cluster-test, lava-*): one function each, so dodo.py stays a task graph only."""
import json
import os
from pathlib import Path

from common import paths
from common.errors import InfraError, KernelFailure, UserError
from common.paths import configs_dir
from lab import lava, migrate
from lab.boot import variant as variant_boots
from lab.cluster import default_state_dir, node_line, run_cluster_test
from lab.boot.report import format_table, write_reports
from rootfs.cluster import load_cluster
from rootfs.tftp import built_kernels


def boot_test_variant(line, variant) -> None:
    results = variant_boots.run_variant(line, variant)
    write_line_report(line)
    failed = [r for r in results if not r.passed]
    if not failed:
        return
    details = "\n".join(f"  {r.name}: {r.verdict} {r.kind or ''} {r.console_line or ''} (log {r.log_path})"
                        for r in failed)
    message = f"boot-test:{variant.name}: {len(failed)} of {len(results)} boots failed\n{details}"
    if all(r.infra_failure for r in failed):
        raise InfraError(message)
    raise KernelFailure(message)


def write_line_report(line):
    """The line's matrix, JUnit XML, Markdown and HTML over every variant booted so far."""
    results = variant_boots.load_results(line, line.variants())
    if not results:
        return results, {}
    return results, write_reports(results, paths.line_dir(line.name) / "boot",
                                  variant_boots.kernel_records(line, line.variants()))


def boot_report(line) -> None:
    results, written = write_line_report(line)
    if not results:
        raise UserError(f"boot-test {line.name}: no boot results yet")
    print(format_table(results))
    print("reports: " + ", ".join(str(p) for p in written.values()), flush=True)


def cluster_file(name: str) -> Path:
    return Path(name) if name else configs_dir() / "cluster-qemu.toml"


def load_test_cluster(line, name: str):
    cluster = load_cluster(cluster_file(name))
    return cluster if cluster.line_name == line.name else cluster.for_line(line.name)


def cluster_test(line, name: str) -> None:
    cluster = load_test_cluster(line, name)
    results = run_cluster_test(cluster, built_kernels(cluster), default_state_dir(line.name))
    for result in results:
        print(node_line(result), flush=True)
    if not results.passed:
        raise KernelFailure(f"cluster-test {line.name}: not every node came up and reached the others "
                            f"(logs under {default_state_dir(line.name)})")


MIGRATE_CLUSTER = "cluster-migrate.toml"


def load_migrate_cluster(line, name: str):
    """The migration cluster (configs/cluster-migrate.toml by default); it
    names its own line, which must be the one chosen."""
    cluster = load_cluster(Path(name) if name else configs_dir() / MIGRATE_CLUSTER)
    if cluster.line_name != line.name:
        raise UserError(f"cluster {cluster.name} ({cluster.source}) is for line {cluster.line_name}: "
                        f"run doit line={cluster.line_name} migrate-test")
    if cluster.migration is None:
        raise UserError(f"{cluster.source}: no [migration] table (source, target): nothing to migrate")
    return cluster


def migrate_test(line, name: str) -> None:
    """doit migrate-test: CRIU moves a running computation between two
    netbooted nodes (lab/migrate.py)."""
    cluster = load_migrate_cluster(line, name)
    result = migrate.run_migration(cluster, built_kernels(cluster), migrate.default_state_dir(line.name))
    steps = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in result.steps.items())
    print(f"steps: {steps}")
    if result.image_bytes is not None:
        print(f"checkpoint: {result.image_files} images, {result.image_bytes} bytes")
    if not result.passed:
        raise KernelFailure(f"migrate-test {cluster.name}: " + "; ".join(result.problems) +
                            f" (logs under {migrate.default_state_dir(line.name)})")


def lava_jobs(line, names: str, base_url: str) -> None:
    """doit lava-jobs base_url=URL [variants=a,b]: LAVA job definitions,
    checked with LAVA's schema, and the artifacts they download."""
    written = lava.write_jobs(line, line.selected(names), base_url)
    for path in written:
        print(f"  {paths.shown(path)}")
    print(f"[lava-jobs {line.name}] {len(written)} jobs valid for LAVA's schema; serve "
          f"{paths.shown(lava.artifacts_dir(line))} at {base_url}", flush=True)


def lava_run(line, job: str) -> None:
    """doit lava-run job=FILE: one QEMU job through Debian's lava-run on
    this machine, its results imported as device qemu-local."""
    if not job or not Path(job).is_file():
        raise UserError(f"lava-run job={job}: no such job file (doit lava-jobs writes them under "
                        f"{paths.shown(lava.jobs_dir(line))})")
    job_path = Path(job).resolve()
    job_id = f"{os.getpid()}"
    out = lava.lava_dir(line) / "runs" / job_path.stem
    log = lava.run_local(job_path, out, job_id=job_id)
    record = lava.import_results(line, job_path, log, "qemu-local", job_id=job_id)
    verdict = json.loads(record.read_text())
    if verdict["verdict"] != "pass":
        raise KernelFailure(f"lava-run {job_path.name}: {verdict['verdict']} - {verdict['failure']} (log {log})")


def lava_import(line, job: str, results: str, device: str, job_id: str) -> None:
    """doit lava-import job=FILE results=FILE device=NAME [job_id=N]."""
    lava.import_results(line, Path(job) if job else None, Path(results) if results else None, device,
                        job_id=job_id)
