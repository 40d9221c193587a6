#!/usr/bin/env python3
"""Build benchmarks for the linux-6.1 line (prints figures; asserts nothing).

  1. clean build of one variant through doit vs bare `make` on the same tree
     and config (overhead ratio; target: under 3 %), ccache off for both;
  2. a no-op `doit kernel:<variant>` (target: under 1 s, make not run);
  3. a clean build of a second CPU variant;
  4. a NIC-only change (one driver toggled) rebuilt incrementally;
  5. a ccache-warm rebuild from a clean object dir vs a cold one
     (target: at least 3x faster).

Usage: .venv/bin/python bench/build_bench.py [--variant athlon] [--second p4]
Uses its own build dir (its own prepared tree) and ccache dir under
build/bench/."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "build" / "bench" / "build" / "linux-6.1" / "src"
BENCH = ROOT / "build" / "bench"


def env(**extra):
    base = {k: v for k, v in os.environ.items() if not k.startswith("LTSP_MOSIX_")}
    base.update(LTSP_MOSIX_BUILD_DIR=str(BENCH / "build"), LTSP_MOSIX_CONFIGS=str(BENCH / "configs"))
    base.update(extra)
    return base


def doit(*args, **extra) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=ROOT, env=env(**extra),
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout + result.stderr


def setup() -> None:
    shutil.rmtree(BENCH, ignore_errors=True)
    shutil.copytree(ROOT / "configs", BENCH / "configs")
    doit("prepare")


def variant_obj(variant: str) -> Path:
    return BENCH / "build" / "linux-6.1" / "variants" / variant / "obj"


def clean(variant: str) -> None:
    shutil.rmtree(variant_obj(variant), ignore_errors=True)
    shutil.rmtree(variant_obj(variant).parent / "out", ignore_errors=True)


def bare_make(variant: str) -> float:
    """The same tree, config and environment, without doit or the project."""
    sys.path.insert(0, str(ROOT))
    from kernels import build, matrix
    line = matrix.load_line("linux-6.1")
    objdir = Path(tempfile.mkdtemp(dir=BENCH, prefix="bare-"))
    shutil.copy(variant_obj(variant).parent / "config", objdir / ".config")
    make_env = build.reproducible_env(line)
    make_env["CCACHE_DISABLE"] = "1"
    started = time.monotonic()
    subprocess.run(["make", "ARCH=i386", "CC=gcc", "-C", str(SRC), f"O={objdir}", f"-j{os.cpu_count()}",
                    "bzImage"], env=make_env, check=True, capture_output=True)
    elapsed = time.monotonic() - started
    shutil.rmtree(objdir)
    return elapsed


def toggle_driver(option: str) -> None:
    nic = BENCH / "configs" / "nic" / "all.config"
    text = nic.read_text()
    on, off = f"{option}=y\n", f"# {option} is not set\n"
    nic.write_text(text.replace(on, off) if on in text else text.replace(off, on))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="athlon")
    parser.add_argument("--second", default="p4")
    args = parser.parse_args()
    setup()
    variant = args.variant
    figures = []

    doit(f"config:{variant}")
    clean(variant)
    doit_clean, _ = doit(f"kernel:{variant}", LTSP_MOSIX_CCACHE="0")
    bare = bare_make(variant)
    figures.append(("clean build via doit (no ccache)", doit_clean, ""))
    figures.append(("clean build, bare make (no ccache)", bare,
                    f"overhead {100 * (doit_clean - bare) / bare:+.1f}% (target < 3%)"))

    noop, output = doit(f"kernel:{variant}", LTSP_MOSIX_CCACHE="0")
    ran_make = "make bzImage" in output
    figures.append(("no-op doit kernel", noop, f"make run: {ran_make} (target < 1 s, no make)"))

    doit(f"config:{args.second}")
    second, _ = doit(f"kernel:{args.second}", LTSP_MOSIX_CCACHE="0")
    figures.append((f"clean build of second CPU variant {args.second}", second, ""))

    toggle_driver("CONFIG_NE2K_PCI")
    nic_change, _ = doit(f"kernel:{variant}", LTSP_MOSIX_CCACHE="0")
    toggle_driver("CONFIG_NE2K_PCI")
    figures.append(("NIC-only change (ne2k-pci toggled), incremental", nic_change, ""))

    ccache_dir = BENCH / "ccache"
    clean(variant)
    cold, _ = doit(f"kernel:{variant}", CCACHE_DIR=str(ccache_dir))
    clean(variant)
    warm, _ = doit(f"kernel:{variant}", CCACHE_DIR=str(ccache_dir))
    figures.append(("clean build, ccache cold", cold, ""))
    figures.append(("clean build, ccache warm", warm, f"{cold / warm:.1f}x faster (target >= 3x)"))

    print(f"\nlinux-6.1 build benchmarks ({os.cpu_count()} cores), variant {variant}")
    for name, seconds, note in figures:
        print(f"  {name:<52} {seconds:8.2f} s  {note}")


if __name__ == "__main__":
    main()
