"""One QEMU job run here through Debian's `lava-run` (lava-dispatcher)
against a device dictionary rendered from the job."""
import shutil
import subprocess
from pathlib import Path

import yaml

from common import paths
from common.errors import InfraError, UserError
from lab.boot.machine import arch_specs
from lab.boot.qemu import KERNEL_FIRST_LINE
from lab.lava.config import LAVA_RUN, settings
from lab.lava.results import read_job

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


