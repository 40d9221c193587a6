"""The boot matrix of a line, from the data in configs/: which NICs (the
variant's NIC profile) and memory sizes (the line's [boot] table) each
variant boots with, where results and logs go, and the per-variant record
that a release checks."""
import json
from pathlib import Path

from common import paths
from common.hashing import sha256_file
from common.records import jsonable
from initrd.build import initrd_path
from kernels import build, matrix
from lab.boot.qemu import BootCase, BootResult, kernel_append, run_matrix
from lab.boot.report import format_table, write_reports


def boot_dir(line, variant) -> Path:
    return paths.line_dir(line.name) / "boot" / variant.name


def boot_results_path(line, variant) -> Path:
    return boot_dir(line, variant) / "results.json"


def boot_cases(line, variant) -> list[BootCase]:
    """PXE boots: the profile's first boot NIC at every memory size, its
    other boot NICs once; a card QEMU lacks boots through the firmware NIC
    and must come up without an interface.  At the plan's high_initrd_at_mb
    the initrd is forced above low memory.  The first NIC's boot at
    firmware_rom_at_mb runs the NIC's own PXE ROM; the others start iPXE as
    QEMU's kernel (same pxelinux, TFTP tree and kernel path, no ROM waits)."""
    plan = line.boot
    nics = matrix.nic_profile(variant.nic).boot_nics
    cells = [(nics[0], mem) for mem in plan.memory_mb] + [(nic, plan.extra_nics_at_mb) for nic in nics[1:]]
    kernel = build.out_dir(line, variant) / "bzImage"
    append = kernel_append(line)
    rom_cell = (nics[0], plan.firmware_rom_at_mb)
    return [BootCase(kernel=kernel, initrd=initrd_path(line), variant=variant.name, cpu=variant.cpu,
                     nic=nic, mem_mb=mem, path=plan.path, append=append, line=line.name,
                     high_initrd=mem == plan.high_initrd_at_mb,
                     firmware="rom" if (nic, mem) == rom_cell else "ipxe")
            for nic, mem in cells]


def run_variant(line, variant, *, jobs: int = 1) -> list[BootResult]:
    cases = boot_cases(line, variant)
    results = run_matrix(cases, log_dir=boot_dir(line, variant) / "logs", jobs=jobs)
    record = {"line": line.name, "variant": variant.name,
              "kernel_sha256": sha256_file(cases[0].kernel),
              "initrd_sha256": sha256_file(cases[0].initrd),
              "boots": jsonable(results)}
    paths.atomic_write_text(boot_results_path(line, variant), json.dumps(record, indent=2) + "\n")
    write_reports(results, boot_dir(line, variant), kernel_records(line, [variant]))
    print(format_table(results), flush=True)
    return results


def load_results(line, variants) -> list[BootResult]:
    results = []
    for variant in variants:
        path = boot_results_path(line, variant)
        if path.is_file():
            for boot in json.loads(path.read_text())["boots"]:
                boot["log_path"] = Path(boot["log_path"])
                boot["warnings"] = [tuple(w) for w in boot["warnings"]]
                results.append(BootResult(**boot))
    return results


def kernel_records(line, variants) -> list[dict]:
    """What each booted variant's boots ran: kernel and initrd sha256 (its
    boot results) and config sha256 (its build record, when it is still the
    record of that kernel)."""
    kernels = []
    for variant in variants:
        path = boot_results_path(line, variant)
        if not path.is_file():
            continue
        booted = json.loads(path.read_text())
        record_path = build.out_dir(line, variant) / "build.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        same = record.get("bzImage", {}).get("sha256") == booted["kernel_sha256"]
        kernels.append({"line": line.name, "variant": variant.name, "kernel_sha256": booted["kernel_sha256"],
                        "initrd_sha256": booted.get("initrd_sha256", ""),
                        "config_sha256": record.get("config_sha256", "") if same else "(rebuilt since)"})
    return kernels
