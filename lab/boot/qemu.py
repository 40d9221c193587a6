"""Boot a kernel + initrd once under QEMU and judge it; run a matrix of boots.

Every boot validates all its inputs before QEMU starts, has its own
temporary directory (its own TFTP tree for PXE), its own console log and no
fixed ports (QEMU user networking needs none), so boots can run in parallel."""
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.mac import DEFAULT_MAC, normalise_mac
from kernels import matrix
from lab.boot.facts import parse_boot_facts
from lab.boot.hostile import LOWMEM_END, make_hostile_bzimage, read_initrd_addr_max
from lab.boot.machine import QemuMachine, boot_nic_for, check_firmware, kernel_only_nics, machine_for
from lab.spawn import running
from lab.boot.watcher import FAIL, HANG, INFRA_ERROR, INFRA_KINDS, PASS, watch_stream
from rootfs.pxetree import PxeNode, make_tftp_tree

# Kernel command lines for our two initrd formats.  panic=1 turns a panic
# into a reboot, which -no-reboot turns into a QEMU exit: a failed boot
# ends in seconds instead of waiting for the timeout.


def kernel_append(line) -> str:
    """The command line a line's kernels boot with: its initrd format's
    (configs/initrd-formats.toml)."""
    return line.kernel_append


BOOT_PATHS = ("pxe", "direct")
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class BootCase:
    """One cell of the boot matrix."""

    kernel: Path
    initrd: Path
    variant: str                 # kernel variant label, e.g. "pentium", "p4_3c590"
    cpu: str                     # CPU variant: a configs/cpu/ name
    nic: str                     # QEMU NIC model or kernel-only NIC (3c590, epic100)
    mem_mb: int
    path: str = "pxe"
    append: str | None = None    # None: the line's (its initrd format's, configs/initrd-formats.toml)
    line: str = "linux-6.1"
    timeout: float = DEFAULT_TIMEOUT
    mac: str = DEFAULT_MAC
    # Boot a copy of the kernel whose header lets the loader put the initrd
    # anywhere (lab/boot/hostile.py): a pass then requires that the initrd was
    # placed above low memory and the kernel copied it below.
    high_initrd: bool = False
    # PXE only: the firmware that fetches pxelinux.0 (lab.boot.machine.FIRMWARES)
    firmware: str = "ipxe"

    @property
    def name(self) -> str:
        return boot_name(self.line, self.variant, self.nic, self.mem_mb, self.path, self.high_initrd,
                         self.firmware)


HIGH_INITRD_SUFFIX = "-high-initrd"


def route(path: str, firmware: str | None) -> str:
    """How the kernel was reached: direct, pxe/ipxe (ipxe.lkrn as QEMU's
    kernel) or pxe/rom (the NIC's own PXE ROM)."""
    return f"pxe/{firmware}" if path == "pxe" and firmware else path


def boot_name(line: str, variant: str, nic: str, mem_mb: int, path: str,
              high_initrd: bool = False, firmware: str = "ipxe") -> str:
    """The boot's name: its log file, its JUnit test and its QEMU -name."""
    name = f"{line}-{variant}-{nic}-{mem_mb}M-{path}"
    if path == "pxe" and firmware == "rom":
        name += "-rom"
    return name + (HIGH_INITRD_SUFFIX if high_initrd else "")


@dataclass
class BootResult:
    name: str
    line: str
    variant: str
    cpu: str
    nic: str                     # as asked (may be kernel-only)
    boot_nic: str                # the QEMU model actually emulated
    mem_mb: int
    path: str
    verdict: str                 # "pass" | "fail" | "hang"
    seconds: float | None        # QEMU start -> marker (or -> verdict)
    kind: str | None             # failure kind (lab/boot/patterns.py), None on pass
    console_line: str | None     # the line that decided the verdict
    log_path: Path
    interfaces: list[str] = field(default_factory=list)
    mem_total_kb: int | None = None
    cpus: int | None = None
    kernel_version: str | None = None
    mosix: str | None = None
    initrd_start: int | None = None
    initrd_moved_to: int | None = None
    drivers: dict[str, str] = field(default_factory=dict)    # "eth0" -> "8139cp"
    warnings: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    high_initrd: bool = False    # the initrd was forced high (see BootCase)
    # "0x... -> 0x...": the loader put the initrd above low memory and the
    # kernel copied it below (what a forced-high boot must show to pass)
    initrd_relocated: str | None = None
    kernel_started: bool = False     # the console shows the kernel's first line
    # earlier tries of this boot (verdict, kind, line, seconds, log), when an
    # infrastructure-shaped failure was retried (run_case)
    tries: list[dict] = field(default_factory=list)
    firmware: str | None = None      # PXE firmware (lab.boot.machine.FIRMWARES); None: direct

    @property
    def route(self) -> str:
        return route(self.path, self.firmware)

    @property
    def infra_failure(self) -> bool:
        """Failed for the machine's reasons (JUnit <error>, exit 4)."""
        return not self.passed and (self.verdict == INFRA_ERROR or self.kind in INFRA_KINDS)

    @property
    def infrastructure_shaped(self) -> bool:
        """A failure that blames the machine, not the kernel: QEMU did not
        start or said nothing, or the firmware's DHCP/TFTP gave up or the
        boot timed out before the kernel printed its first line."""
        if self.passed:
            return False
        return (self.kind in INFRA_KINDS or self.kind == "pxe-no-boot-device"
                or (self.verdict == HANG and not self.kernel_started))

    @property
    def passed(self) -> bool:
        return self.verdict == PASS


def relocation(start: int | None, moved_to: int | None) -> str | None:
    if start is None or moved_to is None or not start >= LOWMEM_END > moved_to:
        return None
    return f"{start:#x} -> {moved_to:#x}"


def _check_boot_path(path: str, tftp_root, mac) -> None:
    if path not in BOOT_PATHS:
        raise UserError(f"unknown boot path {path!r}: valid are {', '.join(BOOT_PATHS)}")
    if tftp_root is not None and path != "pxe":
        raise UserError("tftp_root is only meaningful for path='pxe'")
    if tftp_root is not None and mac is None:
        raise UserError("a prepared tftp_root needs the node's mac to pick its pxelinux.cfg entry")
    if tftp_root is not None:
        cfg = Path(tftp_root) / "pxelinux.cfg"
        entry = cfg / ("01-" + normalise_mac(mac).replace(":", "-"))
        if not entry.is_file() and not (cfg / "default").is_file():
            raise UserError(f"TFTP root {tftp_root} has neither {entry.name} nor default "
                            f"in pxelinux.cfg: node {mac} would not boot")


def _command(machine: QemuMachine, kernel, initrd, append, path, tftp_root, work: Path,
             line: str, variant: str, firmware: str) -> list[str]:
    if path == "direct":
        return machine.direct_boot(kernel, initrd, append)
    if tftp_root is None:
        node = PxeNode(machine.mac, Path(kernel), Path(initrd), append, line, variant)
        tftp_root = make_tftp_tree(work / "tftp", [node], default=None)
    return machine.pxe_boot(tftp_root, firmware)


def _judge_interfaces(result: BootResult, nic: str, require_interface: bool) -> None:
    """A NIC boot is only a pass if the kernel's driver found the card; a
    kernel-only NIC must not find one (it has no driver for the firmware NIC)."""
    ethernet = [name for name in result.interfaces if name != "lo"]
    if nic in kernel_only_nics():
        if ethernet:
            result.notes.append(f"unexpected interfaces {ethernet}: the kernel has a "
                                f"driver for the {result.boot_nic} firmware NIC")
        return
    if require_interface and result.passed and not ethernet:
        result.verdict, result.kind = FAIL, "no-interface"
        result.console_line = f"ltsp-mosix: interfaces: {' '.join(result.interfaces) or 'none'}"
        result.notes.append(f"no ethN: the kernel has no driver bound to QEMU's {nic}")


def _judge_relocation(result: BootResult) -> None:
    """A forced-high initrd boot passes only if the console shows the
    initrd placed high and moved below low memory: a kernel that reached
    its marker some other way proves nothing about >1 GB nodes."""
    result.initrd_relocated = relocation(result.initrd_start, result.initrd_moved_to)
    if not (result.high_initrd and result.passed) or result.initrd_relocated:
        return
    start = f"{result.initrd_start:#x}" if result.initrd_start is not None else "not reported"
    moved = f"{result.initrd_moved_to:#x}" if result.initrd_moved_to is not None else "not moved"
    result.verdict, result.kind = FAIL, "initrd-not-relocated"
    result.console_line = f"initrd at {start}, moved to {moved} (low memory ends at {LOWMEM_END:#x})"
    result.notes.append("the initrd was forced high but the console shows no relocation below "
                        "low memory")


def _judge_cpus(result: BootResult, emulated: int) -> None:
    """An SMP variant that brings up fewer CPUs than the machine has fails:
    the kernel booted, but not as the cluster node it claims to be."""
    if result.passed and result.cpus is not None and result.cpus < emulated:
        result.verdict, result.kind = FAIL, "cpus-missing"
        result.console_line = f"ltsp-mosix: cpus: {result.cpus}"
        result.notes.append(f"the kernel brought up {result.cpus} of {emulated} CPUs "
                            f"(a uniprocessor kernel, or no MP table / APIC support)")


def boot_once(kernel, initrd, *, cpu: str, nic: str, mem_mb: int, path: str = "pxe",
              append: str | None = None, log_path: Path, timeout: float = DEFAULT_TIMEOUT,
              tftp_root: Path | None = None, mac: str | None = None,
              variant: str = "test", line: str = "linux-6.1",
              require_interface: bool = True, high_initrd: bool = False,
              firmware: str = "ipxe", cancel: threading.Event | None = None) -> BootResult:
    """Boot once and return the verdict with what the node reported.

    path="pxe" builds a one-node TFTP tree for this boot unless tftp_root
    (a tree from make_tftp_tree holding this mac) is given; then that tree's
    entry for mac decides what boots and kernel/initrd only label the boot.
    high_initrd boots a copy of the kernel with initrd_addr_max raised and
    passes only when the console shows the initrd relocated below low memory.
    firmware picks what fetches pxelinux.0 (lab.boot.machine.FIRMWARES).
    QEMU is killed and reaped whatever happens."""
    _check_boot_path(path, tftp_root, mac)
    if append is None:
        append = matrix.load_line(line).kernel_append
    boot_nic, nic_note = boot_nic_for(nic)
    log_path = Path(log_path)
    if path == "pxe":
        check_firmware(firmware)
    name = boot_name(line, variant, nic, mem_mb, path, high_initrd, firmware)
    machine = machine_for(cpu=cpu, nic=boot_nic, mem_mb=mem_mb,
                          mac=mac or DEFAULT_MAC, name=f"ltsp-mosix-{name}")
    if high_initrd and tftp_root is not None:
        raise UserError("high_initrd needs its own TFTP tree: it boots a modified copy of the kernel")
    with tempfile.TemporaryDirectory(prefix="ltsp-boot-") as work:
        if high_initrd:
            kernel = make_hostile_bzimage(kernel, Path(work) / Path(kernel).name)
        argv = _command(machine, kernel, initrd, append, path, tftp_root, Path(work),
                        line, variant, firmware)
        with running(argv, cwd=work) as (child, started_at):
            watch = watch_stream(child, timeout=timeout, log_path=log_path,
                                 started_at=started_at, cancel=cancel)
        exit_status = child.exitstatus if child.exitstatus is not None else child.signalstatus
    facts = parse_boot_facts(watch.transcript)
    result = BootResult(
        name=name, line=line, variant=variant, cpu=cpu, nic=nic, boot_nic=boot_nic,
        mem_mb=mem_mb, path=path, verdict=watch.verdict, seconds=watch.seconds,
        kind=watch.kind, console_line=watch.line, log_path=log_path,
        interfaces=facts.interfaces, mem_total_kb=facts.mem_total_kb, cpus=facts.cpus,
        kernel_version=facts.kernel, mosix=facts.mosix,
        initrd_start=facts.initrd_start, initrd_moved_to=facts.initrd_moved_to,
        drivers=facts.drivers, warnings=watch.warnings, high_initrd=high_initrd,
        kernel_started=KERNEL_FIRST_LINE in watch.transcript,
        firmware=firmware if path == "pxe" else None)
    if high_initrd:
        result.notes.append("initrd forced high: booted a copy with initrd_addr_max=0xffffffff")
    if nic_note:
        result.notes.append(nic_note)
    if watch.kind == "qemu-exited":
        result.notes.append(f"QEMU ended with status {exit_status} before the marker")
    _judge_interfaces(result, nic, require_interface)
    _judge_cpus(result, machine.cpu.smp)
    _judge_relocation(result)
    return result


# Both 2.4 and 6.1 open their console with "Linux version ...".
KERNEL_FIRST_LINE = "Linux version"


def run_case(case: BootCase, log_dir: Path, cancel: threading.Event | None = None) -> BootResult:
    """Boot a matrix cell.  An infrastructure-shaped failure is tried once
    more and both tries are kept; a kernel failure (panic, Oops, BUG, a
    dropped initrd, a missing CPU) is never retried.  Two infrastructure
    failures in a row give the verdict "infra-error"."""
    def attempt(log_name: str) -> BootResult:
        return boot_once(case.kernel, case.initrd, cpu=case.cpu, nic=case.nic,
                         mem_mb=case.mem_mb, path=case.path, append=case.append,
                         log_path=Path(log_dir) / log_name, timeout=case.timeout,
                         mac=case.mac, variant=case.variant, line=case.line,
                         high_initrd=case.high_initrd, firmware=case.firmware, cancel=cancel)

    first = attempt(f"{case.name}.log")
    if not first.infrastructure_shaped or (cancel is not None and cancel.is_set()):
        return first
    second = attempt(f"{case.name}.try2.log")
    second.tries = [{"verdict": first.verdict, "kind": first.kind, "console_line": first.console_line,
                     "seconds": first.seconds, "log_path": str(first.log_path)}]
    second.notes.append(f"try 1 was {first.verdict} ({first.kind}), infrastructure-shaped: retried once")
    if second.infrastructure_shaped:
        second.verdict = INFRA_ERROR
    return second


def validate_cases(cases: list[BootCase]) -> None:
    """Check every case before the first boot: a typo in the last cell must
    not surface after twenty minutes of booting."""
    names = [case.name for case in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"boot matrix has duplicate cases (their logs would collide): {duplicates}")
    for case in cases:
        _check_boot_path(case.path, None, None)
        if case.path == "pxe":
            check_firmware(case.firmware)
        boot_nic, _ = boot_nic_for(case.nic)
        machine = machine_for(cpu=case.cpu, nic=boot_nic, mem_mb=case.mem_mb, mac=case.mac)
        machine.qemu_path()
        for path, what in ((case.kernel, "kernel image"), (case.initrd, "initrd")):
            if not Path(path).is_file():
                raise UserError(f"{what} {path} of boot case {case.name} does not exist")
        if case.high_initrd:        # the header must allow it (boot protocol >= 2.03)
            read_initrd_addr_max(Path(case.kernel).read_bytes()[:1024], str(case.kernel))


def progress_line(index: int, total: int, result: BootResult) -> str:
    seconds = f"{result.seconds:.1f}s" if result.seconds is not None else "-"
    detail = f" {result.kind}: {result.console_line}" if result.kind else ""
    how = f" ({result.route})" if result.firmware else ""
    return f"[{index}/{total}] {result.name}{how}: {result.verdict} {seconds}{detail}"


def run_matrix(cases: list[BootCase], *, log_dir: Path, jobs: int = 1,
               progress: bool = True, stream=None) -> list[BootResult]:
    """Boot every case (jobs at a time) and return results in case order.
    Ctrl-C stops the running boots (their QEMUs are killed) and re-raises."""
    validate_cases(cases)
    if jobs < 1:
        raise UserError(f"jobs must be at least 1, not {jobs}")
    stream = stream or sys.stdout
    total, done = len(cases), 0
    lock = threading.Lock()
    cancel = threading.Event()

    def one(case: BootCase) -> BootResult:
        nonlocal done
        result = run_case(case, log_dir, cancel)
        with lock:
            done += 1
            if progress:
                print(progress_line(done, total, result), file=stream, flush=True)
        return result

    if jobs == 1:
        return [one(case) for case in cases]
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="boot")
    futures = []
    try:
        futures = [pool.submit(one, case) for case in cases]
        return [future.result() for future in futures]
    except BaseException:
        cancel.set()          # running watches return within a poll interval
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
