"""QEMU command lines, one small class per architecture (as in virtme-ng),
plus the tables that map our CPU and NIC variants to emulated hardware.

Everything is validated before a command line is returned: a missing QEMU
is an InfraError naming its Debian package, a missing kernel/initrd or an
unknown CPU/NIC/memory size is a UserError naming the culprit."""
import shutil
from dataclasses import dataclass
from pathlib import Path

from common.data import read_toml, require
from common.errors import InfraError, UserError
from common.mac import DEFAULT_MAC, normalise_mac
from common.paths import configs_dir
from kernels import matrix


@dataclass(frozen=True)
class CpuModel:
    variant: str        # our CPU variant (configs/cpu/<variant>)
    qemu_cpu: str       # -cpu value
    smp: int            # CPUs, each in its own socket (see smp_arg)
    why: str            # why this model stands for the variant
    arch: str = "i386"  # the QEMU system it runs on (machine_for)
    # Features added for PXE boots only, because the firmware needs them:
    # Debian's iPXE ROMs (ipxe-qemu 1.0.0+git-20190125) execute fxsave/fxrstor
    # without checking CPUID, so `-cpu pentium` never reaches pxelinux and
    # `pentium,+fxsr` does (measured).  Direct boots get the faithful model.
    pxe_extra: str = ""

    @property
    def smp_arg(self) -> str:
        """-smp value: one CPU per socket, like the dual-Pentium boards of
        the time.  QEMU 7.2's plain `-smp 2` means 1 socket x 2 cores; the
        CPUID then reports HTT and SeaBIOS lists one processor per package
        in the MP table, so 2.4 finds a single CPU (measured: "Processors: 1",
        "Error: only one processor found")."""
        return f"{self.smp},sockets={self.smp},cores=1,threads=1"

    def qemu_cpu_for(self, path: str) -> str:
        return f"{self.qemu_cpu},{self.pxe_extra}" if path == "pxe" and self.pxe_extra else self.qemu_cpu




def cpu_models() -> dict[str, CpuModel]:
    """Our CPU variants as QEMU models, from configs/cpu/<cpu>.toml
    (checked against `qemu-system-i386 -cpu help`, QEMU 7.2, Debian 12)."""
    specs = [matrix.cpu_spec(cpu) for cpu in matrix.cpu_names()]
    return {spec.name: CpuModel(spec.name, spec.qemu_cpu, spec.smp, spec.why, spec.arch, spec.pxe_extra)
            for spec in specs}


@dataclass(frozen=True)
class NicModel:
    name: str           # QEMU -device name
    note: str           # which kernel drivers bind to it (configs/cards.toml)
    pxe_rom: str        # the iPXE ROM QEMU loads for it (Debian ipxe-qemu)


def nic_models() -> dict[str, NicModel]:
    """The cards QEMU emulates (with a PXE ROM), from configs/cards.toml."""
    return {card.qemu: NicModel(card.qemu, card.note, card.pxe_rom)
            for card in matrix.cards().values() if card.qemu}


def kernel_only_nics() -> dict[str, str]:
    """Cards QEMU does not emulate: their kernels boot through the firmware
    NIC and find no ethN ("driver built, no card to bind")."""
    return {card.name: card.note for card in matrix.cards().values() if not card.qemu}


# PXE firmware.  "rom": the NIC's own iPXE option ROM (Debian ipxe-qemu)
# runs from the BIOS, as on a lab node; it waits 3 s at its Ctrl-B banner and
# 2 s for ProxyDHCP offers before it fetches pxelinux.0.  "ipxe": Debian's
# `ipxe` package's ipxe.lkrn, the same iPXE as a Linux kernel image, is
# QEMU's -kernel and runs the script on its command line: no banner, no
# ProxyDHCP wait.  Both hand over to the same pxelinux.0, per-MAC config,
# TFTP tree and kernel path; only the firmware's waits differ.
FIRMWARES = ("ipxe", "rom")
IPXE_LKRN = Path("/usr/lib/ipxe/ipxe.lkrn")
IPXE_PACKAGE = "ipxe"

# QEMU's user network: the guest's address and the host's (its DHCP and
# TFTP server).  iPXE takes the guest address as the DHCP server would give
# it; `|| reboot` turns a failed fetch into a QEMU exit (-no-reboot) at once.
USER_NET_GUEST = "10.0.2.15"
USER_NET_HOST = "10.0.2.2"
IPXE_USER_NET_SCRIPT = (
    f"ifopen net0 && set net0/ip {USER_NET_GUEST} && set net0/netmask 255.255.255.0 && "
    f"set net0/gateway {USER_NET_HOST} && set next-server {USER_NET_HOST} && "
    f"chain tftp://{USER_NET_HOST}/pxelinux.0 || reboot")
# On a network with a DHCP server (the cluster's dnsmasq): ask it, as the
# ROM would; its dhcp-boot names the loader.
IPXE_DHCP_SCRIPT = "dhcp net0 && chain tftp://${next-server}/${filename} || reboot"


def ipxe_kernel() -> Path:
    if not IPXE_LKRN.is_file():
        raise InfraError(f"{IPXE_LKRN} not found: install the Debian package `{IPXE_PACKAGE}`")
    return IPXE_LKRN


def check_firmware(firmware: str) -> None:
    if firmware not in FIRMWARES:
        raise UserError(f"unknown PXE firmware {firmware!r}: valid are {', '.join(FIRMWARES)}")
    if firmware == "ipxe":
        ipxe_kernel()


# QEMU's pc machine keeps at most 3.5 GB below 4 GB, and from -m 3584 on it
# aligns that to 3 GB, mapping the rest above 4 GB where a non-PAE i386
# kernel cannot see it (measured: -m 3584 -> MemTotal ~3.0 GB).  More than
# 3584 MB adds nothing a node can use, so it is refused.
MEM_RANGE_MB = (16, 3584)


def boot_nic_for(nic_variant: str) -> tuple[str, str | None]:
    """(QEMU NIC model to boot with, note for the result or None)."""
    emulated, kernel_only = nic_models(), kernel_only_nics()
    if nic_variant in emulated:
        return nic_variant, None
    if nic_variant in kernel_only:
        firmware = matrix.firmware_nic().qemu
        return (firmware,
                f"driver present, no card to bind: {kernel_only[nic_variant]}; "
                f"booted with {firmware} firmware, whose driver "
                f"the kernel lacks, so no ethN is expected")
    raise UserError(f"unknown NIC {nic_variant!r}: valid are "
                    f"{', '.join(sorted(emulated) + sorted(kernel_only))}")


def _require_file(path, what: str) -> Path:
    """The file as an absolute path (QEMU runs in the boot's own temporary
    directory, where a relative path would name nothing)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    return path.resolve()


@dataclass(frozen=True)
class ArchSpec:
    """An architecture's machine (configs/arches.toml)."""
    name: str
    description: str
    binary: str
    package: str
    machine: str


def arch_specs() -> dict[str, ArchSpec]:
    path = configs_dir() / "arches.toml"
    specs = {}
    for name, table in read_toml(path).items():
        if not isinstance(table, dict):
            raise UserError(f"{path}: [{name}] must be a table")
        specs[name] = ArchSpec(name=name, **{field: require(table, field, str, path, where=name)
                                             for field in ("description", "binary", "package", "machine")})
    return specs


class QemuMachine:
    """A node to boot: the architecture's binary, its Debian package and
    machine type (configs/arches.toml), the CPU and NIC from configs/."""

    def __init__(self, arch: ArchSpec, *, cpu: str, nic: str, mem_mb: int, mac: str = DEFAULT_MAC,
                 name: str | None = None):
        self.binary, self.package, self.machine_type = arch.binary, arch.package, arch.machine
        models, nics = cpu_models(), nic_models()
        if cpu not in models:
            raise UserError(f"unknown CPU variant {cpu!r}: valid are "
                            f"{', '.join(sorted(models))}")
        if nic not in nics:
            raise UserError(f"unknown QEMU NIC model {nic!r}: valid are "
                            f"{', '.join(sorted(nics))}")
        low, high = MEM_RANGE_MB
        if not isinstance(mem_mb, int) or not low <= mem_mb <= high:
            raise UserError(f"memory {mem_mb!r} MB out of range: {low}..{high} MB")
        self.cpu = models[cpu]
        self.nic = nics[nic]
        self.mem_mb = mem_mb
        self.mac = normalise_mac(mac)
        self.name = name

    def qemu_path(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise InfraError(f"{self.binary} not found: install the Debian package "
                             f"`{self.package}`")
        return found

    def common_args(self, path: str) -> list[str]:
        args = [
            "-machine", self.machine_type, "-accel", "tcg",
            "-cpu", self.cpu.qemu_cpu_for(path), "-smp", self.cpu.smp_arg,
            "-m", str(self.mem_mb),
            # No default devices, no display, no monitor (no Ctrl-A escape
            # on the console): the serial port on stdio is the only console.
            "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", "stdio",
            # The node init reboots after the marker; this turns that into a
            # QEMU exit (no ACPI poweroff on 2.4).
            "-no-reboot",
        ]
        if self.name:
            # Shows in `ps`, so a stray QEMU can be traced to its boot; QEMU's
            # option syntax escapes a comma by doubling it.
            args += ["-name", self.name.replace(",", ",,")]
        return args

    def nic_device(self, romfile: str | None = None) -> str:
        """-device value of the node's NIC on netdev n0 (romfile="": no ROM)."""
        device = f"{self.nic.name},netdev=n0,mac={self.mac}"
        return device + (f",romfile={romfile}" if romfile is not None else "")

    def _nic_args(self, netdev_options: str, romfile: str | None = None) -> list[str]:
        # restrict=on: the guest reaches QEMU's built-in DHCP/TFTP and
        # nothing else - no host ports, no outside network.
        return ["-netdev", f"user,id=n0,restrict=on{netdev_options}", "-device", self.nic_device(romfile)]

    def direct_boot(self, kernel, initrd, append: str) -> list[str]:
        """-kernel/-initrd/-append: QEMU's own loader (linuxboot ROM)."""
        kernel = _require_file(kernel, "kernel image")
        initrd = _require_file(initrd, "initrd")
        if "\n" in append:
            raise UserError("kernel command line must be one line")
        return [self.qemu_path(), *self.common_args("direct"),
                # No PXE ROM: the NIC is there for the kernel, not the firmware.
                *self._nic_args("", romfile=""),
                "-kernel", str(kernel), "-initrd", str(initrd), "-append", append]

    def firmware_args(self, firmware: str, script: str) -> tuple[str | None, list[str]]:
        """(romfile for the NIC, arguments that start the firmware): the
        NIC's ROM from the BIOS, or ipxe.lkrn as the kernel running script
        (the NIC then gets no ROM, so only one iPXE runs)."""
        check_firmware(firmware)
        if firmware == "rom":
            return None, ["-boot", "n"]
        return "", ["-kernel", str(ipxe_kernel()), "-append", script]

    def pxe_boot(self, tftp_root, firmware: str = "ipxe") -> list[str]:
        """PXE firmware (FIRMWARES) -> pxelinux.0 from tftp_root over QEMU's
        user network."""
        tftp_root = Path(tftp_root)
        _require_file(tftp_root / "pxelinux.0", "PXE boot loader")
        if "," in str(tftp_root.resolve()):
            raise UserError(f"TFTP root {tftp_root} contains a comma, which QEMU's "
                            f"-netdev option syntax cannot carry")
        romfile, start = self.firmware_args(firmware, IPXE_USER_NET_SCRIPT)
        return [self.qemu_path(), *self.common_args("pxe"),
                *self._nic_args(f",tftp={tftp_root.resolve()},bootfile=pxelinux.0", romfile=romfile),
                *start]


def machine_for(arch: str | None = None, **kwargs) -> QemuMachine:
    """The machine of `arch`, by default the architecture of the CPU
    variant (configs/cpu/<cpu>.toml `arch`)."""
    if arch is None:
        model = cpu_models().get(kwargs.get("cpu"))
        arch = model.arch if model else "i386"      # an unknown CPU is reported by the machine
    specs = arch_specs()
    if arch not in specs:
        raise UserError(f"unknown architecture {arch!r}: valid are {', '.join(sorted(specs))} "
                        f"(configs/arches.toml)")
    return QemuMachine(specs[arch], **kwargs)
