"""Task bodies of the lab stage (doit boot-test, boot-test:report,
cluster-test): one function each, so dodo.py stays a task graph only."""
from pathlib import Path

from common import paths
from common.errors import InfraError, KernelFailure, UserError
from common.paths import configs_dir
from qemu import bootplan
from qemu.cluster_run import default_state_dir, node_line, run_cluster_test
from qemu.report import format_table, write_reports
from rootfs.cluster import load_cluster
from rootfs.tftp import built_kernels


def boot_test_variant(line, variant) -> None:
    results = bootplan.run_variant(line, variant)
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
    results = bootplan.load_results(line, line.variants())
    if not results:
        return results, {}
    return results, write_reports(results, paths.line_dir(line.name) / "boot",
                                  bootplan.kernel_records(line, line.variants()))


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
