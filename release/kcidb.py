"""A line's builds and boots in KernelCI's KCIDB format (I/O schema v5),
checked with KernelCI's own schema package (PyPI `kcidb-io`).

One checkout per line and source (its sources' sha256s and the patch
series: `patchset_hash` as KCIDB defines it), one build per built variant
(its build record), one test per boot of the boot test whose kernel is the
one built (a boot of an older kernel is left out, as the release gate
leaves it).  Verdicts: pass -> PASS, fail/hang -> FAIL, infra-error ->
ERROR.  Submitting needs KernelCI's credentials and network: `kcidb-submit`
reads this file (docs/boot-tests.md, "KernelCI")."""
import hashlib
import json
from pathlib import Path

import kcidb_io

from common import paths
from kernels import build, matrix
from lab.boot.qemu import route
from lab.boot.machine import arch_specs
from lab.boot.variant import boot_results_path

ORIGIN = "ltsp_mosix"
STATUS = {"pass": "PASS", "fail": "FAIL", "hang": "FAIL", "infra-error": "ERROR"}


def kcidb_path(line) -> Path:
    return paths.line_dir(line.name) / "kcidb.json"


def patchset_hash(patches: list[dict]) -> str:
    """sha256 over the newline-terminated sha256 of each patch, in order;
    "" without patches (KCIDB's definition)."""
    if not patches:
        return ""
    return hashlib.sha256("".join(p["sha256"] + "\n" for p in patches).encode()).hexdigest()


def _checkout(line, record: dict) -> dict:
    sources = hashlib.sha256(json.dumps(record["sources"], sort_keys=True).encode()).hexdigest()
    patches = patchset_hash(record["patches"])
    return {
        "id": f"{ORIGIN}:{line.name}-{sources[:16]}-{(patches or 'nopatches')[:16]}",
        "origin": ORIGIN, "tree_name": line.name, "patchset_hash": patches, "valid": True,
        "comment": f"{line.name}: {line.kernel}",
        "misc": {"sources": record["sources"], "patches": [p["name"] for p in record["patches"]],
                 "source": record["source"]},
    }


def _build(line, variant, record: dict, checkout_id: str) -> dict:
    compiler = record["toolchain"].get("gcc", record["toolchain"]["name"])
    return {
        "id": f"{ORIGIN}:{line.name}-{variant.name}-{record['bzImage']['sha256'][:16]}",
        "checkout_id": checkout_id, "origin": ORIGIN, "architecture": line.arch,
        "compiler": compiler.splitlines()[0], "config_name": variant.name,
        "duration": float(record["build_seconds"]), "status": "PASS",
        "misc": {"kernel_release": record["kernel_release"], "bzImage_sha256": record["bzImage"]["sha256"],
                 "config_sha256": record["config_sha256"], "seeded_from": record.get("seeded_from"),
                 "source_date_epoch": record["source_date_epoch"]},
    }


def _environment(boot: dict) -> str:
    """Where a boot ran, from the CPU variant's data (configs/cpu/<cpu>.toml:
    its arch picks the QEMU system)."""
    arch = matrix.cpu_spec(boot["cpu"]).arch
    return (f"QEMU {arch} TCG ({arch_specs()[arch].binary}), -cpu for {boot['cpu']}, {boot['boot_nic']}, "
            f"{boot['mem_mb']} MB, {boot['path']}")


def _test(boot: dict, build_id: str) -> dict:
    how = route(boot["path"], boot.get("firmware"))
    path = f"boot.{how}.{boot['nic']}.{boot['mem_mb']}M" + (".high_initrd" if boot.get("high_initrd") else "")
    test = {
        "id": f"{build_id}:{boot['name']}", "build_id": build_id, "origin": ORIGIN,
        "path": path.replace("-", "_").replace("/", "_"), "status": STATUS[boot["verdict"]],
        "environment": {"comment": _environment(boot)},
        "misc": {"kind": boot.get("kind"), "console_line": boot.get("console_line"),
                 "tries": len(boot.get("tries", [])) + 1, "initrd_relocated": boot.get("initrd_relocated")},
    }
    if boot.get("seconds") is not None:
        test["duration"] = float(boot["seconds"])
    return test


def kcidb_report(line, variants) -> dict:
    """The KCIDB document of the variants built (and booted) in this build folder."""
    checkouts, builds, tests = {}, [], []
    for variant in variants:
        record_path = build.out_dir(line, variant) / "build.json"
        if not record_path.is_file():
            continue
        record = json.loads(record_path.read_text())
        checkout = _checkout(line, record)
        checkouts.setdefault(checkout["id"], checkout)
        entry = _build(line, variant, record, checkout["id"])
        builds.append(entry)
        results = boot_results_path(line, variant)
        if results.is_file():
            booted = json.loads(results.read_text())
            if booted["kernel_sha256"] == record["bzImage"]["sha256"]:
                tests += [_test(boot, entry["id"]) for boot in booted["boots"]]
    return {"version": {"major": 5, "minor": 3}, "checkouts": list(checkouts.values()),
            "builds": builds, "tests": tests}


def validate(document: dict) -> None:
    """KernelCI's schema check (jsonschema); an invalid document is a bug
    of ours, so its exception is not caught."""
    kcidb_io.schema.V5_3.validate(document)


def write_kcidb(line, variants) -> Path:
    document = kcidb_report(line, variants)
    validate(document)
    out = kcidb_path(line)
    paths.atomic_write_text(out, json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"[kcidb {line.name}] {len(document['builds'])} builds, {len(document['tests'])} boots "
          f"-> {out} (KCIDB v5.3, origin {ORIGIN})", flush=True)
    return out
