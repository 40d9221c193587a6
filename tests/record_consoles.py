#!/usr/bin/env python3
"""Record the replayed console logs of tests/fixtures/consoles/ again from
real boots of this project's kernels, and write RECORDED.toml beside them
(for each log: kernel, its sha256, how it was booted, the verdict).

    .venv/bin/python tests/record_consoles.py [--only NAME ...]

Kernels it boots (build them first; a missing one is named with the
command that builds it):
  6.1   <--build-61>/linux-6.1/variants/{pentium,pentium_smp}/out/bzImage
        (doit kernel:pentium kernel:pentium_smp initrd; build/ by default)
  2.4   <--build-24>/linux-2.4.22/variants/{pentium,pentium_smp}/out/bzImage
        and that line's initrd (the e2e test site's build folder by default,
        which tests/e2e/test_linux24.py fills)
  2.4 without the relocation patch (0014): built here from the vanilla
        test archive (../shared/sources/, sha256 checked) into
        build/record-consoles/, as tests/e2e/test_linux24.py's fixture does.

Each case is one real QEMU boot through lab.boot.qemu.boot_once; the console
log it writes is the fixture, byte for byte.  Logs that no kernel of ours
can produce on demand (an Oops, a BUG, a GPF, a CPU mismatch, QEMU dying)
stay hand-written and are not listed in RECORDED.toml."""
import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.hashing import sha256_file  # noqa: E402
from kernels import matrix  # noqa: E402
from kernels.unpack import safe_extract  # noqa: E402
from lab.boot.qemu import boot_once  # noqa: E402
from rootfs.pxetree import PxeNode, make_tftp_tree  # noqa: E402
from tests.conftest import VANILLA_24, VANILLA_24_SHA256, shared_sources_dir  # noqa: E402

CONSOLES = ROOT / "tests" / "fixtures" / "consoles"
RECORD = CONSOLES / "RECORDED.toml"
LINE24 = "linux-2.4.22"
RELOCATION_PATCH = "0014-initrd-relocate-below-lowmem.patch"
WORK = ROOT / "build" / "record-consoles"


@dataclass(frozen=True)
class Case:
    name: str                  # fixture file name
    line: str
    kernel: str                # "pentium", "pentium_smp" or "unpatched"
    why: str
    path: str = "direct"
    cpu: str = "pentium"
    mem_mb: int = 512
    append: str | None = None  # None: the line's normal command line
    initrd: str = "line"       # "line" (the node initrd) or "zeros" (4 KiB, no filesystem)
    high_initrd: bool = False
    timeout: float = 60.0
    pxe_config: str | None = None   # "missing-kernel": the node's entry names no file
    extra: dict = field(default_factory=dict)


NO_ROOT_61 = "console=ttyS0,115200 panic=1 root=/dev/sda1"
NO_ROOT_24 = "console=ttyS0,115200 panic=1 root=/dev/hda1"

CASES = [
    Case("good-6.1-direct.log", "linux-6.1", "pentium", "a pass, QEMU's own loader"),
    Case("good-6.1-pxe.log", "linux-6.1", "pentium", "a pass over PXE (pxelinux)", path="pxe"),
    Case("good-6.1-hostile-pxe-3584.log", "linux-6.1", "pentium",
         "the initrd forced above low memory at 3.5 GB; 6.1 moves it", path="pxe", mem_mb=3584,
         high_initrd=True),
    Case("no-initramfs-6.1.log", "linux-6.1", "pentium",
         "a panic without root: no initramfs, and the node kernel has no block devices",
         append=NO_ROOT_61, initrd="zeros"),
    Case("hang-6.1.log", "linux-6.1", "pentium", "a hang: rootwait for a disk that never comes",
         append="console=ttyS0,115200 root=/dev/sda1 rootwait", initrd="zeros", timeout=15),
    Case("smp-on-one-cpu-6.1.log", "linux-6.1", "pentium_smp",
         "an SMP kernel started on a one-CPU machine", cpu="pentium"),
    Case("good-2.4.22-direct.log", LINE24, "pentium", "a pass, QEMU's own loader, ext2 initrd"),
    Case("good-2.4.22-ext2.log", LINE24, "pentium", "a pass over PXE, ext2 initrd", path="pxe"),
    Case("good-2.4.22-smp-pxe.log", LINE24, "pentium_smp", "an SMP pass over PXE on two CPUs",
         path="pxe", cpu="pentium_smp"),
    Case("no-root-2.4.log", LINE24, "pentium", "a panic without root: no initrd, no disk",
         append=NO_ROOT_24, initrd="zeros"),
    Case("smp-on-one-cpu-2.4.log", LINE24, "pentium_smp",
         "an SMP kernel started on a one-CPU machine", cpu="pentium"),
    Case("initrd-beyond-memory-2.4.log", LINE24, "unpatched",
         "2.4 without 0014: the loader puts the initrd high at 3.5 GB and 2.4 drops it",
         mem_mb=3584, high_initrd=True),
    Case("initrd-beyond-memory-2.4.22-hostile-pxe.log", LINE24, "unpatched",
         "the same over PXE", path="pxe", mem_mb=3584, high_initrd=True),
    Case("pxe-no-entry.log", "linux-6.1", "pentium",
         "pxelinux finds no entry for the node's MAC: the refusal default", path="pxe",
         pxe_config="no-entry"),
    Case("pxe-kernel-missing.log", "linux-6.1", "pentium",
         "the node's entry names a kernel the TFTP tree lacks", path="pxe", pxe_config="missing-kernel"),
]


def fail(message: str) -> None:
    sys.exit(f"record_consoles: {message}")


def kernel_61(build_61: Path, variant: str) -> Path:
    image = build_61 / "linux-6.1" / "variants" / variant / "out" / "bzImage"
    if not image.is_file():
        fail(f"{image} is missing: run `doit line=linux-6.1 kernel:{variant} initrd`")
    return image


def kernel_24(build_24: Path, variant: str) -> Path:
    image = build_24 / LINE24 / "variants" / variant / "out" / "bzImage"
    if not image.is_file():
        fail(f"{image} is missing: build the 2.4 line there (tests/e2e/test_linux24.py does, "
             f"or --build-24 names another build folder)")
    return image


def initrd_of(build_dir: Path, line: str) -> Path:
    """The line's node initrd from build_dir, or from build/ (it does not
    depend on the kernel variant)."""
    name = "initrd.cpio" if line == "linux-6.1" else "initrd.ext2"
    path = build_dir / line / "initrd" / name
    if not path.is_file():
        path = ROOT / "build" / line / "initrd" / name
    if not path.is_file():
        fail(f"{path} is missing: run `doit line={line} initrd` with that build folder")
    return path


def unpatched_24() -> Path:
    """pentium without 0014, built from the verified test archive."""
    out = WORK / "build" / LINE24 / "variants" / "pentium" / "out" / "bzImage"
    if out.is_file():
        return out
    archive = shared_sources_dir() / VANILLA_24
    if not archive.is_file() or sha256_file(archive) != VANILLA_24_SHA256:
        fail(f"{archive}: missing or not the test archive (sha256 {VANILLA_24_SHA256})")
    tree = safe_extract(archive, WORK / "linux-2.4.22", strip_components=1)
    patches = WORK / "patches"
    shutil.rmtree(patches, ignore_errors=True)
    shutil.copytree(ROOT / "patches", patches)
    series = patches / LINE24 / "series"
    series.write_text(series.read_text().replace(RELOCATION_PATCH + "\n", ""))
    (patches / LINE24 / RELOCATION_PATCH).unlink()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(WORK),
           "LTSP_MOSIX_OVERRIDE_LINUX_2_4_22": str(tree), "LTSP_MOSIX_PATCHES": str(patches),
           "LTSP_MOSIX_BUILD_DIR": str(WORK / "build"), "LTSP_MOSIX_CCACHE": "0"}
    subprocess.run([sys.executable, "-m", "doit", f"line={LINE24}", "kernel:pentium"], cwd=ROOT,
                   env=env, check=True)
    return out


def record(case: Case, kernels: dict, initrds: dict, work: Path) -> dict:
    kernel = kernels[(case.line, case.kernel)]
    initrd = initrds[case.line]
    if case.initrd == "zeros":
        initrd = work / "zeros.img"
        initrd.write_bytes(bytes(4096))
    append = case.append or matrix.load_line(case.line).kernel_append
    tftp_root, mac = None, None
    if case.pxe_config:
        mac = "52:54:00:12:34:56"
        node = PxeNode(mac, kernel, initrd, append, case.line, case.kernel)
        if case.pxe_config == "no-entry":
            tftp_root = make_tftp_tree(work / f"tftp-{case.name}", [], default=None)
            shutil.copyfile(kernel, tftp_root / "vmlinuz-unused")
        else:
            tftp_root = make_tftp_tree(work / f"tftp-{case.name}", [node])
            (tftp_root / node.kernel_path).unlink()
    log = work / case.name
    result = boot_once(kernel, initrd, cpu=case.cpu, nic="e1000", mem_mb=case.mem_mb, path=case.path,
                       append=append, log_path=log, timeout=case.timeout, tftp_root=tftp_root, mac=mac,
                       variant=case.kernel, line=case.line, require_interface=False,
                       high_initrd=case.high_initrd)
    shutil.copyfile(log, CONSOLES / case.name)
    print(f"{case.name}: {result.verdict} {result.kind or ''} in {result.seconds}s "
          f"({result.console_line})", flush=True)
    return {"name": case.name, "why": case.why, "line": case.line, "kernel": case.kernel,
            "kernel_sha256": sha256_file(kernel), "route": result.route, "cpu": case.cpu,
            "mem_mb": case.mem_mb, "append": append, "initrd": case.initrd,
            "high_initrd": case.high_initrd, "verdict": result.verdict, "kind": result.kind or ""}


def toml_table(entry: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[[recorded]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in entry.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-61", type=Path, default=ROOT / "build")
    parser.add_argument("--build-24", type=Path, default=ROOT / "build" / "test-site-2.4" / "build")
    parser.add_argument("--only", nargs="*", help="fixture names to record again (default: all)")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or c.name in args.only]
    kernels, initrds = {}, {}
    for case in cases:
        key = (case.line, case.kernel)
        if key in kernels:
            continue
        if case.kernel == "unpatched":
            kernels[key] = unpatched_24()
        elif case.line == "linux-6.1":
            kernels[key] = kernel_61(args.build_61, case.kernel)
        else:
            kernels[key] = kernel_24(args.build_24, case.kernel)
        initrds[case.line] = initrd_of(args.build_61 if case.line == "linux-6.1" else args.build_24, case.line)
    previous = {}
    if RECORD.is_file():
        import tomllib
        previous = {e["name"]: e for e in tomllib.loads(RECORD.read_text()).get("recorded", [])}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(prefix="ltsp-record-") as work:
        for case in cases:
            previous[case.name] = {**record(case, kernels, initrds, Path(work)), "recorded": stamp}
    header = ("# Written by tests/record_consoles.py: the console logs of this folder that\n"
              "# are recorded from real boots, with the kernel and how it was booted.\n"
              "# Logs not listed here are hand-written (no kernel of ours shows them on demand).\n")
    text = header + "".join("\n" + toml_table(previous[name]) for name in
                            [c.name for c in CASES if c.name in previous])
    tmp = RECORD.with_name(RECORD.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(RECORD)


if __name__ == "__main__":
    main()
