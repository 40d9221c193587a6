#!/usr/bin/env python3
"""Boot benchmarks for a line's built kernels (prints figures and ratios
measured side by side in one run; asserts nothing).

  1. PXE vs direct: every built variant boots direct (-kernel/-initrd),
     over PXE with iPXE started as QEMU's kernel (pxe/ipxe, the boot test's
     default) and over PXE through the NIC's own ROM (pxe/rom), interleaved,
     each on the NICs given that its profile boots with (else its profile's
     first NIC); the medians over the matrix and their ratios
     (target: pxe/ipxe at most 2.0x direct).
  2. The line's boot matrix (its [boot] plan) for the first --matrix
     variants at -n 1 and at -n 2: wall time and ratio.

Seconds are QEMU start -> the node's marker, as in the boot test.
Usage: .venv/bin/python bench/boot_bench.py [--line linux-2.4.22]
           [--nics e1000,rtl8139] [--repeat 1] [--matrix 2]
The kernels and the initrd must be built (doit kernel, doit initrd) in the
build folder the environment names."""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from initrd.build import initrd_path  # noqa: E402
from kernels import build, matrix  # noqa: E402
from lab.boot.qemu import BootCase, kernel_append, run_case, run_matrix  # noqa: E402
from lab.boot.variant import boot_cases  # noqa: E402

ROUTES = (("direct", None), ("pxe", "ipxe"), ("pxe", "rom"))


def built_variants(line) -> list:
    return [v for v in line.variants() if (build.out_dir(line, v) / "bzImage").is_file()]


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def pxe_vs_direct(line, variants, nics, repeat: int, logs: Path) -> None:
    append = kernel_append(line)
    seconds: dict[str, list[float]] = {f"{path}/{fw}" if fw else path: [] for path, fw in ROUTES}
    print(f"1. PXE vs direct, {line.name}: {len(variants)} variants x NICs {', '.join(nics)} x {repeat}, 512 MB")
    for variant in variants:
        # the variant's own boot NICs (a 3c590 kernel boots as "epic100"/"3c590":
        # e1000 firmware, no card to bind), those of --nics first
        own = matrix.nic_profile(variant.nic).boot_nics
        for nic in [n for n in own if n in nics] or [own[0]]:
            row = []
            for _ in range(repeat):
                for path, firmware in ROUTES:
                    case = BootCase(kernel=build.out_dir(line, variant) / "bzImage", initrd=initrd_path(line),
                                    variant=variant.name, cpu=variant.cpu, nic=nic, mem_mb=512, path=path,
                                    append=append, line=line.name, firmware=firmware or "ipxe")
                    result = run_case(case, logs)
                    key = f"{path}/{firmware}" if firmware else path
                    if not result.passed:
                        print(f"   {result.name}: {result.verdict} {result.kind} (log {result.log_path})")
                        continue
                    seconds[key].append(result.seconds)
                    row.append(f"{key} {result.seconds:5.2f}")
            print(f"   {variant.name:<22} {nic:<9} " + "  ".join(row), flush=True)
    direct = median(seconds["direct"])
    for key, values in seconds.items():
        print(f"   median {key:<9} {median(values):5.2f} s over {len(values)} boots"
              + (f"  = {median(values) / direct:.2f}x direct" if key != "direct" else ""))


def matrix_jobs(line, variants, logs: Path) -> None:
    cases = [case for variant in variants for case in boot_cases(line, variant)]
    print(f"2. the [boot] matrix of {', '.join(v.name for v in variants)}: {len(cases)} boots")
    walls = {}
    for jobs in (1, 2):
        started = time.monotonic()
        results = run_matrix(cases, log_dir=logs / f"n{jobs}", jobs=jobs, progress=False)
        walls[jobs] = time.monotonic() - started
        passed = sum(r.passed for r in results)
        print(f"   -n {jobs}: {walls[jobs]:6.1f} s wall, {passed}/{len(results)} pass, "
              f"median boot {median([r.seconds for r in results if r.passed]):.2f} s", flush=True)
    print(f"   -n 2 / -n 1 wall time: {walls[2] / walls[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", default="linux-6.1")
    parser.add_argument("--nics", default="e1000,rtl8139")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--matrix", type=int, default=2, help="variants in the -n 1 / -n 2 run (0: skip)")
    args = parser.parse_args()
    line = matrix.load_line(args.line)
    variants = built_variants(line)
    if not variants or not initrd_path(line).is_file():
        sys.exit(f"{args.line}: no built kernels or no initrd in the build folder (doit kernel, doit initrd)")
    with tempfile.TemporaryDirectory(prefix="ltsp-boot-bench-") as logs:
        pxe_vs_direct(line, variants, args.nics.split(","), args.repeat, Path(logs))
        if args.matrix:
            matrix_jobs(line, variants[:args.matrix], Path(logs))


if __name__ == "__main__":
    main()
