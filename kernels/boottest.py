"""The boot matrix of a line, from the variants and the QEMU tables: which
NIC models and memory sizes each variant boots with, where results and
logs go, and the per-variant record that a release checks."""
import json
from dataclasses import asdict
from pathlib import Path

from kernels import build, paths, release, tree
from kernels.errors import UserError

MEMORY_MB = (512, 2048, 3584)          # 3.5 GB: the >1 GB nodes, initrd placed high
EXTRA_NICS_AT_MB = 512                 # the other QEMU NICs are tried once each
QEMU_NICS = ("e1000", "rtl8139", "ne2k_pci")


def initrd_dir(line) -> Path:
    return paths.line_dir(line.name) / "initrd"


def initrd_path(line) -> Path:
    return initrd_dir(line) / ("initrd.cpio" if line.initrd_format == "cpio" else "initrd.ext2")


def build_initrd(line) -> Path:
    from initrd.build import compile_init, make_cpio_initrd, make_ext2_initrd
    init = compile_init(initrd_dir(line))
    maker = make_cpio_initrd if line.initrd_format == "cpio" else make_ext2_initrd
    out = maker(initrd_path(line), init)
    print(f"[initrd {line.name}] {out} ({out.stat().st_size} bytes, sha256 "
          f"{tree.sha256_file(out)[:16]}…)", flush=True)
    return out


def boot_cases(line, variant) -> list:
    """PXE boots: e1000 at every memory size, the other QEMU NICs once;
    NIC-specific kernels (no emulated card) boot with e1000 firmware at
    every size and must come up without an interface.  At the line's
    high_initrd_at_mb the initrd is forced above low memory."""
    from qemu.boot import APPEND_CPIO, APPEND_EXT2, BootCase
    if line.high_initrd_at_mb is not None and line.high_initrd_at_mb not in MEMORY_MB:
        raise UserError(f"line {line.name}: high_initrd_at_mb = {line.high_initrd_at_mb} is not one of "
                        f"the boot matrix's memory sizes ({', '.join(map(str, MEMORY_MB))})")
    kernel = build.out_dir(line, variant) / "bzImage"
    append = APPEND_CPIO if line.initrd_format == "cpio" else APPEND_EXT2
    if variant.nic == "all":
        plan = [("e1000", mem) for mem in MEMORY_MB] + [(nic, EXTRA_NICS_AT_MB) for nic in QEMU_NICS[1:]]
    else:
        plan = [(variant.nic, mem) for mem in MEMORY_MB]
    return [BootCase(kernel=kernel, initrd=initrd_path(line), variant=variant.name, cpu=variant.cpu,
                     nic=nic, mem_mb=mem, path="pxe", append=append, line=line.name,
                     high_initrd=mem == line.high_initrd_at_mb)
            for nic, mem in plan]


def boot_dir(line, variant) -> Path:
    return release.boot_results_path(line, variant).parent


def run_variant(line, variant, *, jobs: int = 1) -> list:
    from qemu.boot import run_matrix
    from qemu.report import format_table, write_reports
    cases = boot_cases(line, variant)
    results = run_matrix(cases, log_dir=boot_dir(line, variant) / "logs", jobs=jobs)
    write_reports(results, boot_dir(line, variant))
    record = {"line": line.name, "variant": variant.name,
              "kernel_sha256": tree.sha256_file(cases[0].kernel),
              "initrd_sha256": tree.sha256_file(cases[0].initrd),
              "boots": [_jsonable(asdict(result)) for result in results]}
    paths.atomic_write_text(release.boot_results_path(line, variant), json.dumps(record, indent=2) + "\n")
    print(format_table(results), flush=True)
    return results


def load_results(line, variants) -> list:
    from qemu.boot import BootResult
    results = []
    for variant in variants:
        path = release.boot_results_path(line, variant)
        if path.is_file():
            for boot in json.loads(path.read_text())["boots"]:
                boot["log_path"] = Path(boot["log_path"])
                boot["warnings"] = [tuple(w) for w in boot["warnings"]]
                results.append(BootResult(**boot))
    return results


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
