#!/usr/bin/env python3
"""Lab benchmarks: how long a node takes to come up with its root on NFS,
and a whole `cluster-test` run (prints figures and ratios measured side by
side in one run; asserts nothing; the tests no longer time these).

  1. One node, its root on NFS from the project's ganesha in a network
     namespace of its own: direct (-kernel) and over PXE, --repeat times
     each, interleaved; medians and the PXE / direct ratio, and how long
     the NFS server took to be ready.
  2. The QEMU cluster (configs/cluster-qemu.toml, or --cluster FILE): wall
     time of the whole run, each node's boot (QEMU start -> init on NFS)
     and marker (after the pings) seconds.

Needs root (network namespaces) and the line's kernels built in the build
folder the environment names (doit kernel:<variant> for the cluster's
variants).  Usage: .venv/bin/python bench/lab_bench.py [--repeat 3]
[--cluster FILE] [--skip-cluster]"""
import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.paths import configs_dir  # noqa: E402
from kernels import build, matrix  # noqa: E402
from lab.cluster import run_cluster_test  # noqa: E402
from lab.nfsboot import boot_nfsroot  # noqa: E402
from rootfs.cluster import load_cluster  # noqa: E402
from rootfs.tftp import built_kernels  # noqa: E402


def nfs_root_boots(kernel: Path, repeat: int, work: Path) -> None:
    seconds: dict[str, list[float]] = {"direct": [], "pxe": []}
    ready: list[float] = []
    print(f"1. NFS-root boots of {kernel} x {repeat}")
    for run in range(repeat):
        for path in seconds:
            result = boot_nfsroot(kernel, work / f"{path}-{run}", path=path, hostname=f"bench-{path}")
            if result.verdict != "pass":
                print(f"   {path}: {result.verdict} {result.kind} (log {result.log_path})")
                continue
            seconds[path].append(result.seconds)
            ready.append(result.nfs_ready_seconds)
            print(f"   {path:<6} {result.seconds:6.2f} s (NFS server ready in {result.nfs_ready_seconds} s)",
                  flush=True)
    medians = {path: statistics.median(v) if v else float("nan") for path, v in seconds.items()}
    for path, value in medians.items():
        print(f"   median {path:<6} {value:6.2f} s over {len(seconds[path])} boots")
    print(f"   pxe / direct: {medians['pxe'] / medians['direct']:.2f}; "
          f"NFS server ready: median {statistics.median(ready) if ready else float('nan'):.2f} s")


def cluster_run(cluster_file: Path, work: Path) -> None:
    cluster = load_cluster(cluster_file)
    kernels = built_kernels(cluster)
    print(f"2. cluster {cluster.name}: {len(cluster.nodes)} nodes "
          f"({', '.join(sorted(kernels))})")
    started = time.monotonic()
    results = run_cluster_test(cluster, kernels, work / "cluster", stream=io.StringIO())
    wall = time.monotonic() - started
    for result in results:
        print(f"   {result.name} {result.variant:<8} boot {result.boot_seconds} s, marker {result.seconds} s: "
              f"{'pass' if result.passed else 'FAIL ' + '; '.join(result.problems)}")
    print(f"   whole run {wall:.1f} s wall, {sum(r.passed for r in results)}/{len(results)} nodes passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", default="linux-6.1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cluster", type=Path, default=configs_dir() / "cluster-qemu.toml")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    line = matrix.load_line(args.line)
    kernel = build.out_dir(line, line.variant(line.default_variant)) / "bzImage"
    if not kernel.is_file():
        sys.exit(f"{kernel} is missing: doit line={line.name} kernel:{line.default_variant}")
    with tempfile.TemporaryDirectory(prefix="ltsp-lab-bench-") as work:
        nfs_root_boots(kernel, args.repeat, Path(work))
        if not args.skip_cluster:
            cluster_run(args.cluster, Path(work))


if __name__ == "__main__":
    main()
