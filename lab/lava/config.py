"""What the lab's LAVA side reads from configs/lava.toml (device types, the
boot check, the caps on input from outside) and where its files go."""
from dataclasses import dataclass
from pathlib import Path


from common import paths, safeyaml
from common.data import read_toml, require
from common.errors import UserError
from lab.boot.variant import boot_dir

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


