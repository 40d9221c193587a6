#!/usr/bin/env python3
"""The whole matrix of a line built cold, with and without seeding the
NIC-specific variants from their CPU's objects (prints figures; asserts
nothing).

Each run gets a build folder of its own under build/bench/matrix/ (the
source unpacked and patched again, every variant configured and built) and
ccache off, so no run profits from another.  Printed: wall time of
`doit kernel` per run, per-variant make seconds from the build records,
the seeded/clean ratio, and whether the seeded bzImages equal the clean
ones byte for byte.

Usage: .venv/bin/python bench/matrix_build_bench.py [--line linux-2.4.22]
           [--runs clean,seeded] [-n 2]
The 2.4 line needs its archive pinned where the configs say (as the e2e
test site does: LTSP_MOSIX_CONFIGS and LTSP_MOSIX_DL_DIR are passed on)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "build" / "bench" / "matrix"


def run(line: str, name: str, seed: bool, jobs: int) -> tuple[float, dict]:
    build_dir = BENCH / f"{line}-{name}"
    shutil.rmtree(build_dir, ignore_errors=True)
    env = {**os.environ, "LTSP_MOSIX_BUILD_DIR": str(build_dir), "LTSP_MOSIX_CCACHE": "0",
           "LTSP_MOSIX_SEED": "1" if seed else "0"}
    started = time.monotonic()
    argv = [sys.executable, "-m", "doit", "-n", str(jobs), f"line={line}", "kernel"]
    with open(BENCH / f"{line}-{name}.log", "w") as log:
        result = subprocess.run(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{name}: doit kernel failed (exit {result.returncode}); log {BENCH / f'{line}-{name}.log'}")
    records = {}
    for path in sorted((build_dir / line / "variants").glob("*/out/build.json")):
        record = json.loads(path.read_text())
        records[record["variant"]] = record
    return elapsed, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", default="linux-6.1")
    parser.add_argument("--runs", default="clean,seeded", help="which runs: clean, seeded or both")
    parser.add_argument("-n", type=int, default=1, help="doit -n (builds at once)")
    args = parser.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    print(f"{args.line}: the whole matrix built cold (ccache off), doit -n {args.n}, {os.cpu_count()} cores",
          flush=True)
    results = {}
    for name in args.runs.split(","):
        elapsed, records = run(args.line, name, name == "seeded", args.n)
        results[name] = (elapsed, records)
        make = sum(r["build_seconds"] for r in records.values())
        print(f"  {name:<7} {len(records)} variants in {elapsed:7.1f} s wall ({elapsed / 60:.1f} min); "
              f"make {make:.1f} s in all", flush=True)
        for variant, record in records.items():
            seeded = f"  seeded from {record['seeded_from']}" if record.get("seeded_from") else ""
            print(f"    {variant:<22} make {record['build_seconds']:6.1f} s  "
                  f"{record['bzImage']['sha256'][:16]}{seeded}", flush=True)
    if {"clean", "seeded"} <= results.keys():
        (clean, clean_records), (seeded, seeded_records) = results["clean"], results["seeded"]
        same = [v for v in clean_records if clean_records[v]["bzImage"] == seeded_records.get(v, {}).get("bzImage")]
        print(f"  seeded/clean wall time: {seeded / clean:.2f} ({clean - seeded:.0f} s saved)")
        print(f"  bzImages identical, seeded vs clean: {len(same)} of {len(clean_records)}")


if __name__ == "__main__":
    main()
