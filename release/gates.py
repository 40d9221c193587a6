"""The release gates: every reason a line's variants must not ship, all at
once - a local-override (unverified) build, another patch series, a boot
test missing, failed, run on another kernel or (2.4) without a relocated
high initrd, a line failing `doit check`, an unknown or dirty series, a
LAVA (lab) boot that failed or ran another kernel, and - when the release
asks for hardware - a NIC-specific variant without a real-hardware pass on
its card."""
import json
import subprocess
from pathlib import Path

from common.errors import UserError
from common.hashing import sha256_file
from kernels import build, invariants, kconfig, matrix, tree
from lab.boot.variant import boot_results_path
from lab.lava import lab_results


def gate_refusals(line, variants, *, initrd: Path | None = None, hardware: bool = False) -> list[str]:
    """Every reason this release must not ship, all at once.  `initrd`: the
    node initrd the packages will carry, which must be the one booted.
    `hardware`: a variant whose card QEMU does not emulate also needs a
    passing LAVA boot on a real node with that card (doit lava-import)."""
    if line.unsupported:
        return [f"line {line.name}: {line.unsupported}"]
    refusals = _series_refusals(line)
    shipped_initrd = sha256_file(initrd) if initrd is not None and Path(initrd).is_file() else None
    for variant in variants:
        refusals += _variant_refusals(line, variant, shipped_initrd, hardware)
    configs = {v.name: kconfig.final_config_path(line, v) for v in line.variants()}
    try:
        invariants.check_line(line.name, line.invariants, configs)
    except UserError as error:
        refusals.append(f"doit check fails: {error.args[0]}")
    return refusals


def _series_refusals(line) -> list[str]:
    try:
        patches = tree.series(line)
    except UserError as error:
        return [f"unknown patch series: {error.args[0]}"]
    if not patches:
        return []
    folder = line.series_file.parent
    status = subprocess.run(["git", "status", "--porcelain", "--", str(folder)], cwd=folder,
                            capture_output=True, text=True)
    if status.returncode != 0:
        return [f"patch series {folder} is not in a git checkout: its state is unknown"]
    if status.stdout.strip():
        return [f"patch series {folder} has uncommitted changes:\n{status.stdout.rstrip()}"]
    return []


def _variant_refusals(line, variant, shipped_initrd: str | None, hardware: bool) -> list[str]:
    record_path = build.out_dir(line, variant) / "build.json"
    if not record_path.is_file():
        return [f"{variant.name}: not built ({record_path} missing)"]
    record = json.loads(record_path.read_text())
    refusals = []
    if record["source"] != "verified":
        refusals.append(f"{variant.name}: built from an {tree.UNVERIFIED} ({record.get('override')})")
    current = [{"name": p.name, "sha256": sha256_file(p)} for p in _safe_series(line)]
    if record["patches"] != current:
        refusals.append(f"{variant.name}: built with another patch series than patches/{line.patches}")
    refusals += _boot_refusals(line, variant, record, shipped_initrd)
    refusals += _lab_refusals(line, variant, record, hardware)
    return refusals


def _lab_refusals(line, variant, record: dict, hardware: bool) -> list[str]:
    """Imported LAVA boots count like local ones: each must have passed on
    this very kernel.  With `hardware`, each card of the variant's NIC
    profile that QEMU lacks needs a real node's pass with that card."""
    refusals, proven = [], set()
    for lab in lab_results(line, variant):
        where = f"LAVA boot {lab['job_name']!r} on {lab['device']} ({lab['device_type']})"
        if lab["kernel_sha256"] != record["bzImage"]["sha256"]:
            refusals.append(f"{variant.name}: {where} ran another kernel ({lab['kernel_sha256'][:16]}, "
                            f"the build is {record['bzImage']['sha256'][:16]}): run the job again")
        elif lab["verdict"] != "pass":
            refusals.append(f"{variant.name}: {where}: {lab['verdict']} - {lab['failure']}")
        elif lab["device_type"] != "qemu" and lab.get("card"):
            proven.add(lab["card"])
    if hardware:
        cards = matrix.cards()
        for nic in matrix.nic_profile(variant.nic).boot_nics:
            if cards[nic].qemu is None and nic not in proven:
                refusals.append(f"{variant.name}: no real-hardware pass on a node with its {cards[nic].lava_tag} "
                                f"card (QEMU emulates none; run its LAVA job on a lab node and doit lava-import "
                                f"the results)")
    return refusals


def _safe_series(line) -> list[Path]:
    try:
        return tree.series(line)
    except UserError:
        return []


def _boot_refusals(line, variant, record: dict, shipped_initrd: str | None) -> list[str]:
    results_path = boot_results_path(line, variant)
    if not results_path.is_file():
        return [f"{variant.name}: no boot test (run doit boot-test:{variant.name})"]
    results = json.loads(results_path.read_text())
    if results["kernel_sha256"] != record["bzImage"]["sha256"]:
        return [f"{variant.name}: the boot test ran on another kernel (rebuilt since; boot-test again)"]
    if shipped_initrd is not None and results.get("initrd_sha256") != shipped_initrd:
        return [f"{variant.name}: the boot test booted another initrd than the one to be packaged "
                f"(rebuilt since; boot-test again)"]
    failed = [f"{r['name']}: {r['verdict']}" for r in results["boots"] if r["verdict"] != "pass"]
    if not results["boots"]:
        return [f"{variant.name}: boot test recorded no boots"]
    if failed:
        return [f"{variant.name}: boot test failed: {', '.join(failed)}"]
    return _relocation_refusals(line, variant, results["boots"])


def _relocation_refusals(line, variant, boots: list[dict]) -> list[str]:
    """Lines with high_initrd_at_mb ship only when a boot at that size with
    the initrd forced high passed and showed it relocated below low memory."""
    if line.boot.high_initrd_at_mb is None:
        return []
    if any(relocated_initrd(boot) for boot in boots if boot["mem_mb"] == line.boot.high_initrd_at_mb):
        return []
    return [f"{variant.name}: no passing boot at {line.boot.high_initrd_at_mb}M with the initrd forced "
            f"above low memory and relocated (boot-test:{variant.name} again)"]


def relocated_initrd(boot: dict) -> str | None:
    """"0x... -> 0x..." for a passed forced-high boot that moved its initrd
    below low memory (as the boot judged it), else None."""
    if boot.get("high_initrd") and boot["verdict"] == "pass":
        return boot.get("initrd_relocated")
    return None
