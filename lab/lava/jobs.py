"""LAVA job definitions for a line's kernels: a QEMU device per memory size
of the boot plan and a real x86 node per card, each with a monitor watching
the console from the kernel's first line to the boot marker; checked with
LAVA's own schema (Debian's lava-common, in Debian's Python) before they
are written."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from common import paths
from common.errors import InfraError, UserError
from common.hashing import sha256_file
from initrd.build import initrd_path
from kernels import build, matrix
from lab.boot.machine import arch_specs, cpu_models
from lab.boot.patterns import FAILURE_PATTERNS
from lab.boot.qemu import kernel_append
from lab.boot.watcher import BOOT_MARKER
from lab.lava.config import LAVA_PYTHON, MONITOR, ORIGIN_KEY, artifacts_dir, jobs_dir, settings

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


