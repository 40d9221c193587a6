"""The results of a LAVA job (lava-run's log, or a LAVA server's results
YAML) read bounded and safely (common/safeyaml.py) and imported into the
variant's boot record, with the device that ran it."""
import json
from pathlib import Path


from common import paths, safeyaml
from common.errors import UserError
from kernels import build
from lab.boot.patterns import classify_line
from lab.lava.config import MONITOR, ORIGIN_KEY, lab_dir, settings
from lab.lava.jobs import job_file_name

# -- importing results -------------------------------------------------------------------

def read_job(path: Path) -> dict:
    """A LAVA job file: capped, aliases and unsafe tags refused, a mapping."""
    job = safeyaml.load(safeyaml.read_capped(path, settings().limits.job_bytes, "a LAVA job"), str(path))
    if not isinstance(job, dict):
        raise UserError(f"{path}: a LAVA job must be a YAML mapping, not {type(job).__name__}")
    return job


def _read_outside(path: Path) -> str:
    limits = settings().limits
    text = safeyaml.read_capped(path, limits.results_bytes, "LAVA results or a lava-run log")
    safeyaml.check_lines(text, limits.line_bytes, str(path))
    return text


def read_results(path: Path) -> list[dict]:
    """A LAVA job's results as {suite, case, result, extra}: from lava-run's
    log (one YAML flow mapping per line, lvl "results") or a LAVA server's
    results YAML (a list of {suite, name, result, metadata})."""
    text = _read_outside(path)
    found = []
    if _is_run_log(text):
        for number, entry in _log_entries(path, text):
            if entry.get("lvl") == "results":
                msg = entry.get("msg")
                if not isinstance(msg, dict):
                    raise UserError(f"{path}:{number}: a results line whose msg is not a mapping")
                extra = msg.get("extra") or {}
                found.append({"suite": str(msg.get("definition", "")), "case": str(msg.get("case", "")),
                              "result": str(msg.get("result", "")), "extra": extra if isinstance(extra, dict) else {}})
        return found
    entries = safeyaml.load(text, str(path))
    if not isinstance(entries, list):
        raise UserError(f"{path}: LAVA results YAML must be a list of test cases")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not {"suite", "name", "result"} <= entry.keys():
            raise UserError(f"{path}: test case {number} lacks suite, name or result")
        metadata = entry.get("metadata") or {}
        if isinstance(metadata, str):
            metadata = safeyaml.load(metadata, f"{path}: metadata of test case {number}") or {}
        if not isinstance(metadata, dict):
            raise UserError(f"{path}: metadata of test case {number} is not a mapping")
        extra = metadata.get("extra") or {}
        if isinstance(extra, list):         # a server exports a long extra as [{key: value}, ...]
            extra = {k: v for item in extra if isinstance(item, dict) for k, v in item.items()}
        found.append({"suite": str(entry["suite"]), "case": str(entry["name"]), "result": str(entry["result"]),
                      "extra": extra if isinstance(extra, dict) else {}, "job": str(entry.get("job", ""))})
    return found


def _is_run_log(text: str) -> bool:
    return text.lstrip().startswith("{")


def _log_entries(path: Path, text: str):
    """lava-run's log lines: YAML flow mappings (mostly JSON, with YAML
    tags), each read on its own, aliases refused; yields (number, entry)."""
    for number, line in enumerate(text.splitlines(), 1):
        entry = safeyaml.load(line, f"{path}:{number}")
        if not isinstance(entry, dict):
            raise UserError(f"{path}:{number}: not a lava-run log line: {line[:120]!r}")
        yield number, entry


def console_lines(path: Path) -> list[str]:
    """The target's console from lava-run's log ([] for server results):
    each line cut to the cap before it is kept, the whole to its cap."""
    limits = settings().limits
    text = _read_outside(path)
    if not _is_run_log(text):
        return []
    kept, size = [], 0
    for number, entry in _log_entries(path, text):
        if entry.get("lvl") != "target":
            continue
        msg = entry.get("msg")
        line = msg if isinstance(msg, str) else json.dumps(msg, default=str)[:limits.console_line_chars + 1]
        if len(line) > limits.console_line_chars:
            line = line[:limits.console_line_chars] + " [line cut]"
        if size + len(line) > limits.console_bytes:
            kept.append(f"[console cut at {limits.console_bytes} bytes: {path} line {number} and later]")
            break
        kept.append(line)
        size += len(line) + 1
    return kept


def _download_sha256(results: list[dict], label: str) -> str | None:
    for result in results:
        if result["case"] == "http-download" and result["extra"].get("label") == label:
            return result["extra"].get("sha256sum")
    return None


def judge(results: list[dict]) -> dict:
    """Verdict of a job from its results: pass when the job finished, the
    monitor saw the marker, and no failure case was recorded."""
    job_result = next((r["result"] for r in results if r["suite"] == "lava" and r["case"] == "job"), None)
    watched = next((r for r in results if r["suite"] == "lava" and r["case"] == "lava-test-monitor"), None)
    failures = [r for r in results if r["suite"].endswith(MONITOR) and r["result"] == "fail"]
    if failures:
        text = str(failures[0]["extra"].get("test_case_id", failures[0]["case"]))
        row = classify_line(text)
        return {"verdict": "fail", "failure": text, "kind": row.kind if row else "lab-failure"}
    if job_result != "pass":
        error = next((r["extra"].get("error_msg") for r in results if r["case"] == "job"), None)
        return {"verdict": "fail" if job_result == "fail" else "error",
                "failure": f"LAVA job result {job_result or 'missing'}" + (f": {error}" if error else ""),
                "kind": "lab-job"}
    if watched is None or watched["result"] != "pass":
        return {"verdict": "fail", "failure": "the boot marker never came (monitor did not pass)",
                "kind": "no-marker"}
    return {"verdict": "pass", "failure": None, "kind": None}


def import_results(line, job_path: Path, results_path: Path, device: str, *, job_id: str = "") -> Path:
    """doit lava-import: a LAVA job's results into lab/<job>.json of the
    variant the job names.  Refused: a job of another line or an unknown
    variant, a kernel download whose sha256 differs from the job's, or a
    job for another kernel than the variant's current build."""
    if not device:
        raise UserError("lava-import needs device=NAME: the LAVA device (hostname) that ran the job")
    for path, what in ((job_path, "job="), (results_path, "results=")):
        if not path or not Path(path).is_file():
            raise UserError(f"lava-import {what}{path or ''}: no such file")
    job = read_job(Path(job_path))
    meta = job.get("metadata") or {}
    key = f"{ORIGIN_KEY}."
    if not isinstance(meta, dict):
        raise UserError(f"{job_path}: metadata must be a mapping")
    for field in ("line", "variant", "kernel_sha256"):
        if not isinstance(meta.get(key + field), str):
            raise UserError(f"{job_path}: metadata {key}{field} is missing: not a job `doit lava-jobs` wrote")
    if not isinstance(job.get("job_name"), str):
        raise UserError(f"{job_path}: job_name is missing")
    if meta.get(key + "line") != line.name:
        raise UserError(f"{job_path}: not a job of line {line.name} (metadata {key}line = "
                        f"{meta.get(key + 'line')!r}); pick the line with doit line=NAME")
    variant = line.variant(meta[key + "variant"])
    results = read_results(results_path)
    expected = meta[key + "kernel_sha256"]
    downloaded = _download_sha256(results, "kernel")
    if downloaded is not None and downloaded != expected:
        raise UserError(f"{results_path}: the job downloaded kernel sha256 {downloaded}, "
                        f"but {job_path} names {expected}")
    record_path = build.out_dir(line, variant) / "build.json"
    current = json.loads(record_path.read_text())["bzImage"]["sha256"] if record_path.is_file() else None
    if current != expected:
        raise UserError(f"{results_path}: LAVA booted kernel sha256 {expected} of {variant.name}, "
                        f"but the current build is {current or 'missing'} (rebuilt since: run the job again)")
    verdict = judge(results)
    job_id = job_id or next((r["job"] for r in results if r.get("job")), "")
    name = job_file_name(job).removesuffix(".yaml")
    card = meta.get(key + "card")
    record = {"line": line.name, "variant": variant.name, "job_name": job["job_name"], "job_id": job_id,
              "device": device, "device_type": job.get("device_type"), "tags": job.get("tags", []),
              "card": card, "mem_mb": _int_or_none(meta.get(key + "mem_mb"), job_path, key + "mem_mb"),
              "kernel_sha256": expected, "initrd_sha256": meta.get(key + "initrd_sha256"),
              "ran_on": f"lab/{device}", "results": str(Path(results_path).resolve()), **verdict}
    folder = lab_dir(line, variant)
    console = console_lines(results_path)
    if console:
        record["log_path"] = str(paths.atomic_write_text(folder / f"{name}.log", "\n".join(console) + "\n"))
    target = paths.atomic_write_text(folder / f"{name}.json", json.dumps(record, indent=2) + "\n")
    print(f"[lava-import] {variant.name}: {job['job_name']} on {device} ({job.get('device_type')}): "
          f"{verdict['verdict']}" + (f" - {verdict['failure']}" if verdict["failure"] else ""), flush=True)
    return target


def _int_or_none(value, path, field: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: metadata {field} must be a number of MB, not {str(value)[:40]!r}") from None


def lab_results(line, variant) -> list[dict]:
    folder = lab_dir(line, variant)
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
