"""LAVA, for boots beyond this machine: job definitions for the line's
kernels (a QEMU i386 device and a real x86 node with the variant's card),
checked with LAVA's own schema; one job run here through Debian's
`lava-run` against a device dictionary rendered from the job; and the
results of a LAVA job (lava-run's log, or a LAVA server's results YAML)
imported into the variant's boot record, with the device that ran it.

lava-common and lava-dispatcher are Debian packages of Debian's Python
(/usr/bin/python3), not of the project's virtualenv: the schema check runs
there, as lava-run does."""
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from common import paths, safeyaml
from common.data import read_toml, require
from common.errors import InfraError, UserError
from common.hashing import sha256_file
from initrd.build import initrd_path
from kernels import build, matrix
from lab.boot.qemu import KERNEL_FIRST_LINE, kernel_append
from lab.boot.variant import boot_dir
from lab.boot.machine import arch_specs, cpu_models
from lab.boot.patterns import FAILURE_PATTERNS, classify_line
from lab.boot.watcher import BOOT_MARKER

LAVA_PYTHON = Path("/usr/bin/python3")      # Debian's Python, where lava-common is installed
LAVA_RUN = "lava-run"
MONITOR = "ltsp-mosix-boot"                 # the monitor test's name (its results' suite)
ORIGIN_KEY = "ltsp_mosix"                   # prefix of the job metadata keys


@dataclass(frozen=True)
class QemuDevice:
    device_type: str
    options: tuple[str, ...]
    job_minutes: int
    boot_minutes: int


@dataclass(frozen=True)
class NodeDevice:
    device_type: str
    boot_method: str
    commands: str
    job_minutes: int
    boot_minutes: int


@dataclass(frozen=True)
class Limits:
    """Caps on what comes from outside ([limits] of configs/lava.toml)."""
    results_bytes: int
    job_bytes: int
    line_bytes: int
    console_bytes: int
    console_line_chars: int


@dataclass(frozen=True)
class Settings:
    start: str
    no_interface: str
    qemu: QemuDevice
    node: NodeDevice
    limits: Limits


def settings_file() -> Path:
    return paths.configs_dir() / "lava.toml"


def settings() -> Settings:
    path = settings_file()
    data = read_toml(path)
    check = require(data, "check", dict, path)
    qemu = require(data, "qemu", dict, path)
    node = require(data, "node", dict, path)
    limits = require(data, "limits", dict, path)
    method = require(node, "boot_method", str, path, where="node")
    if method not in ("ipxe", "pxe"):
        raise UserError(f"{path}: field 'node.boot_method' must be \"ipxe\" or \"pxe\", not {method!r}")
    return Settings(
        start=require(check, "start", str, path, where="check"),
        no_interface=require(check, "no_interface", str, path, where="check"),
        qemu=QemuDevice(device_type=require(qemu, "device_type", str, path, where="qemu"),
                        options=tuple(require(qemu, "options", list, path, where="qemu")),
                        job_minutes=require(qemu, "job_minutes", int, path, where="qemu"),
                        boot_minutes=require(qemu, "boot_minutes", int, path, where="qemu")),
        node=NodeDevice(device_type=require(node, "device_type", str, path, where="node"), boot_method=method,
                        commands=require(node, "commands", str, path, where="node"),
                        job_minutes=require(node, "job_minutes", int, path, where="node"),
                        boot_minutes=require(node, "boot_minutes", int, path, where="node")),
        limits=Limits(results_bytes=require(limits, "results_mb", int, path, where="limits") * safeyaml.MiB,
                      job_bytes=require(limits, "job_kb", int, path, where="limits") * 1024,
                      line_bytes=require(limits, "line_kb", int, path, where="limits") * 1024,
                      console_bytes=require(limits, "console_kb", int, path, where="limits") * 1024,
                      console_line_chars=require(limits, "console_line_chars", int, path, where="limits")))


# -- where things go ------------------------------------------------------------------

def lava_dir(line) -> Path:
    return paths.line_dir(line.name) / "lava"


def jobs_dir(line) -> Path:
    return lava_dir(line) / "jobs"


def artifacts_dir(line) -> Path:
    """What a job downloads, laid out as its URLs name it below base_url."""
    return lava_dir(line) / "artifacts"


def lab_dir(line, variant) -> Path:
    """Imported LAVA results of a variant, one JSON per job (beside the
    local boot results, which `doit boot-test` rewrites)."""
    return boot_dir(line, variant) / "lab"


# -- job definitions --------------------------------------------------------------------

def _append(line) -> str:
    return kernel_append(line)


def _kernel_args(line) -> str:
    """The append line without its console (a LAVA device sets its own)."""
    return " ".join(arg for arg in _append(line).split() if not arg.startswith("console="))


def _lava_regex(regex: str) -> str:
    """A pattern of lab/boot/patterns.py as one alternative of a bigger regex:
    a leading global flag becomes a scoped one."""
    match = re.match(r"\(\?([a-z]+)\)", regex)
    return f"(?{match.group(1)}:{regex[match.end():]})" if match else f"(?:{regex})"


def monitor(line, variant, *, hardware: bool) -> dict:
    """The boot check: from the kernel's first line to the node init's
    marker; any fatal row of the failure table before it is a failed case
    named by the console text that matched.  On a real node the card must
    be bound (an interface listed); an SMP kernel must find all its CPUs."""
    config = settings()
    alternatives = [_lava_regex(p.regex) for p in FAILURE_PATTERNS if p.fatal]
    if hardware:
        alternatives.append(config.no_interface)
    smp = matrix.cpu_spec(variant.cpu).smp
    if smp > 1:
        alternatives.append(r"ltsp-mosix: cpus: 1\s")
    # The case is the rest of the console line from the match (the table
    # classifies whole lines: "Kernel panic - ... Attempted to kill init" is
    # init-died), taken once the line has ended.  The result group matches
    # nothing: every match is a failure (fixupdict).
    pattern = "(?P<test_case_id>(?:" + "|".join(alternatives) + r")[^\r\n]*)(?=\r*\n)(?P<result>)"
    re.compile(pattern)
    return {"name": MONITOR, "start": config.start, "end": BOOT_MARKER, "pattern": pattern,
            "fixupdict": {"": "fail"}}


def _artifacts(line, variant, base_url: str) -> dict:
    kernel = build.out_dir(line, variant) / "bzImage"
    initrd = initrd_path(line)
    for path, task in ((kernel, f"doit kernel:{variant.name}"), (initrd, "doit initrd")):
        if not path.is_file():
            raise UserError(f"{path} missing: run {task} before doit lava-jobs")
    base = base_url.rstrip("/")
    return {"kernel": {"path": kernel, "name": f"{variant.name}/bzImage", "sha256": sha256_file(kernel)},
            "ramdisk": {"path": initrd, "name": initrd.name, "sha256": sha256_file(initrd)},
            "base": base}


def _url(artifacts: dict, label: str) -> str:
    return f"{artifacts['base']}/{artifacts[label]['name']}"


def _metadata(line, variant, artifacts: dict, **extra) -> dict:
    fields = {"line": line.name, "variant": variant.name, "kernel_sha256": artifacts["kernel"]["sha256"],
              "initrd_sha256": artifacts["ramdisk"]["sha256"], **extra}
    return {f"{ORIGIN_KEY}.{key}": str(value) for key, value in fields.items()}


def qemu_job(line, variant, mem_mb: int, artifacts: dict) -> dict:
    config = settings().qemu
    if line.arch not in arch_specs():
        raise UserError(f"configs/arches.toml has no QEMU for {line.arch} (line {line.name})")
    cpu = cpu_models()[variant.cpu]
    context = {"arch": line.arch, "cpu": cpu.qemu_cpu, "memory": mem_mb}
    if cpu.smp > 1:
        context["extra_options"] = [f"-smp {cpu.smp_arg}"]       # one CPU per socket, as the boot test
    return {
        "device_type": config.device_type,
        "job_name": f"ltsp-mosix {line.name} {variant.name} qemu {mem_mb}M",
        "priority": "medium",
        "visibility": "public",
        "timeouts": {"job": {"minutes": config.job_minutes}, "action": {"minutes": config.boot_minutes}},
        "context": context,
        "metadata": _metadata(line, variant, artifacts, device="qemu", mem_mb=mem_mb),
        "actions": [
            {"deploy": {"to": "tmpfs", "timeout": {"minutes": config.boot_minutes}, "images": {
                "kernel": {"image_arg": f'-kernel {{kernel}} -append "{_append(line)}"',
                           "url": _url(artifacts, "kernel"), "sha256sum": artifacts["kernel"]["sha256"]},
                "ramdisk": {"image_arg": "-initrd {ramdisk}",
                            "url": _url(artifacts, "ramdisk"), "sha256sum": artifacts["ramdisk"]["sha256"]}}}},
            {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": config.boot_minutes}}},
            {"test": {"timeout": {"minutes": config.boot_minutes},
                      "monitors": [monitor(line, variant, hardware=False)]}},
        ],
    }


def node_job(line, variant, card: matrix.Card, artifacts: dict) -> dict:
    config = settings().node
    # The node initrd is the whole test: LAVA adds neither modules nor its overlay.
    ramdisk = {"url": _url(artifacts, "ramdisk"), "sha256sum": artifacts["ramdisk"]["sha256"],
               "install_modules": False, "install_overlay": False}
    return {
        "device_type": config.device_type,
        "job_name": f"ltsp-mosix {line.name} {variant.name} {config.device_type} {card.lava_tag}",
        "priority": "medium",
        "visibility": "public",
        "tags": [card.lava_tag],
        "timeouts": {"job": {"minutes": config.job_minutes}, "action": {"minutes": config.boot_minutes}},
        "context": {"extra_kernel_args": _kernel_args(line)},
        "metadata": _metadata(line, variant, artifacts, device=config.device_type, card=card.name),
        "actions": [
            {"deploy": {"to": "tftp", "timeout": {"minutes": config.boot_minutes},
                        "kernel": {"url": _url(artifacts, "kernel"), "sha256sum": artifacts["kernel"]["sha256"]},
                        "ramdisk": ramdisk}},
            {"boot": {"method": config.boot_method, "commands": config.commands,
                      "timeout": {"minutes": config.boot_minutes}}},
            {"test": {"timeout": {"minutes": config.boot_minutes},
                      "monitors": [monitor(line, variant, hardware=True)]}},
        ],
    }


def job_file_name(job: dict) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", job["job_name"].removeprefix("ltsp-mosix ")) + ".yaml"


def jobs_for(line, variant, base_url: str, artifacts: dict | None = None) -> list[dict]:
    """One QEMU job per memory size of the boot plan (a LAVA qemu device
    takes its memory from the job), one node job per card of the variant's
    NIC profile, tagged so that only a node with that card runs it."""
    artifacts = artifacts or _artifacts(line, variant, base_url)
    cards = matrix.cards()
    jobs = [qemu_job(line, variant, mem, artifacts) for mem in line.boot.memory_mb]
    jobs += [node_job(line, variant, cards[nic], artifacts) for nic in matrix.nic_profile(variant.nic).boot_nics]
    return jobs


_VALIDATOR = """
import json, sys
try:
    from lava_common.schemas import validate
except ImportError as error:
    print(json.dumps({"import": str(error)}))
    sys.exit(0)
errors = {}
for name, job in json.load(sys.stdin).items():
    try:
        validate(job, strict=True)
    except Exception as error:
        errors[name] = f"{type(error).__name__}: {error}"
print(json.dumps({"errors": errors}))
"""


def validate_jobs(jobs: dict[str, dict]) -> None:
    """Every job through lava_common.schemas.validate(job, strict=True) in
    Debian's Python; an invalid job is a bug of this module (InfraError
    naming the job and LAVA's message)."""
    if not LAVA_PYTHON.is_file():
        raise InfraError(f"{LAVA_PYTHON} missing: LAVA's schema needs Debian's python3 and lava-common "
                         f"(apt-get install lava-common)")
    proc = subprocess.run([str(LAVA_PYTHON), "-c", _VALIDATOR], input=json.dumps(jobs),
                          capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                               "LC_ALL": "C.UTF-8"})
    if proc.returncode != 0:
        raise InfraError(f"LAVA schema check failed to run: {proc.stderr.strip()[-500:]}")
    answer = json.loads(proc.stdout)
    if "import" in answer:
        raise InfraError(f"LAVA's schema is not installed ({answer['import']}): apt-get install lava-common")
    if answer["errors"]:
        raise InfraError("LAVA rejects generated jobs (a bug of lab/lava.py):\n" +
                         "\n".join(f"  {name}: {message}" for name, message in sorted(answer["errors"].items())))


def _stage(source: Path, target: Path) -> None:
    """A byte-identical copy for the web server, replaced atomically."""
    if target.is_file() and sha256_file(target) == sha256_file(source):
        return
    with paths.atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)


def write_jobs(line, variants, base_url: str) -> list[Path]:
    """doit lava-jobs: every variant's jobs, validated, under the build
    folder; the artifacts they download staged below artifacts_dir() as
    base_url names them.  Nothing is written unless every job validates."""
    if not re.match(r"^https?://[^/\s]+", base_url or ""):
        raise UserError(f"base_url {base_url!r}: the http(s) URL the lab downloads the artifacts from is "
                        f"required (doit lava-jobs base_url=http://server/path)")
    planned, staged = {}, {}
    for variant in variants:
        artifacts = _artifacts(line, variant, base_url)
        for label in ("kernel", "ramdisk"):
            staged[artifacts[label]["name"]] = artifacts[label]["path"]
        for job in jobs_for(line, variant, base_url, artifacts):
            planned[f"{variant.name}/{job_file_name(job)}"] = job
    validate_jobs(planned)
    for name, source in staged.items():
        _stage(source, artifacts_dir(line) / name)
    written = []
    for name, job in planned.items():
        target = jobs_dir(line) / name
        paths.atomic_write_text(target, yaml.safe_dump(job, sort_keys=False, width=1000))
        written.append(target)
    return written


# -- running a QEMU job here ----------------------------------------------------------------

def device_dictionary(job: dict, hostname: str = "qemu-local") -> dict:
    """The device configuration lava-run needs for a `qemu` job, rendered
    from the job's context the way a LAVA server renders its qemu device
    type: -cpu, -m and the extra options of the context, plus this line's
    fixed options (configs/lava.toml)."""
    config = settings().qemu
    if job.get("device_type") != config.device_type:
        raise UserError(f"job {job.get('job_name')!r} is for device type {job.get('device_type')!r}: "
                        f"only {config.device_type!r} jobs run here; the others need a lab's LAVA")
    context = job.get("context", {})
    binaries = {name: spec.binary for name, spec in arch_specs().items()}
    if context.get("arch") not in binaries:
        raise UserError(f"job {job.get('job_name')!r}: context arch {context.get('arch')!r} has no QEMU "
                        f"in configs/arches.toml")
    options = [f"-cpu {context['cpu']}", f"-m {context['memory']}", *config.options,
               *context.get("extra_options", [])]
    return {
        "device_type": config.device_type,
        "hostname": hostname,
        "available_architectures": [context["arch"]],
        "constants": {
            "failure_retry": 1, "boot_retry": 1, "spawn_maxread": "4092",
            "kernel-start-message": KERNEL_FIRST_LINE,
            "shutdown-message": "reboot: Restarting system",
            "default-shell-prompt": "lava-test: # ",
            "posix": {"lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s",
                      "lava_test_shell_file": "~/.bashrc"},
        },
        "actions": {
            "deploy": {"methods": {"image": {"parameters": {"guest": {"size": 512, "interface": "ide"}}}}},
            "boot": {"connections": {"serial": None},
                     "methods": {"qemu": {"parameters": {"command": binaries[context["arch"]],
                                                         "options": options}}}},
        },
        "timeouts": {"actions": {}, "connections": {}},
    }


def run_local(job_path: Path, out_dir: Path, *, job_id: str) -> Path:
    """Run one QEMU job with Debian's lava-run; returns its log (JSON lines:
    LAVA's own log, results and the target's console)."""
    job = read_job(Path(job_path))
    device = device_dictionary(job)
    if shutil.which(LAVA_RUN) is None:
        raise InfraError("lava-run missing: apt-get install lava-dispatcher")
    out_dir.mkdir(parents=True, exist_ok=True)
    device_path = paths.atomic_write_text(out_dir / "device.yaml", yaml.safe_dump(device, sort_keys=False))
    log = out_dir / "lava-run.log"
    print(f"[lava-run] {job['job_name']} on {device['hostname']} ({device['device_type']})", flush=True)
    with paths.atomic_output(log) as tmp, Path(tmp).open("w") as stream:
        proc = subprocess.run([LAVA_RUN, "--job-id", job_id, "--output-dir", str(out_dir / "output"),
                               "--device", str(device_path), str(job_path)],
                              stdout=stream, stderr=subprocess.STDOUT, text=True, timeout=30 * 60)
    if proc.returncode not in (0, 1):       # 1: the job failed (its results say why)
        raise InfraError(f"lava-run exited {proc.returncode} for {job_path}: see {log}")
    return log


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
