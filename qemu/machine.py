"""QEMU command lines, one small class per architecture (as in virtme-ng),
plus the tables that map our CPU and NIC variants to emulated hardware.

Everything is validated before a command line is returned: a missing QEMU
is an InfraError naming its Debian package, a missing kernel/initrd or an
unknown CPU/NIC/memory size is a UserError naming the culprit."""
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kernels.errors import InfraError, UserError


@dataclass(frozen=True)
class CpuModel:
    variant: str        # our CPU variant (configs/cpu/<variant>)
    qemu_cpu: str       # -cpu value
    smp: int            # CPUs, each in its own socket (see smp_arg)
    why: str            # why this model stands for the variant
    # Features added for PXE boots only, because the firmware needs them
    # (see PXE_FIRMWARE_NEEDS); direct boots get the faithful model.
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


# Debian's iPXE ROMs (ipxe-qemu 1.0.0+git-20190125) execute fxsave/fxrstor
# in librm without checking CPUID, so on a CPU without FXSR the PXE ROM
# faults silently (measured: `-cpu pentium` never reaches pxelinux,
# `pentium,+fxsr` does).  A real P55C node had an Etherboot/PXE ROM that ran
# on it; FXSR is only given to PXE boots, and 6.1/2.4 merely detect it.
PXE_FIRMWARE_NEEDS = "+fxsr"


# Checked against `qemu-system-i386 -cpu help` (QEMU 7.2, Debian 12).
CPU_MODELS: dict[str, CpuModel] = {m.variant: m for m in (
    CpuModel("pentium", "pentium", 1,
             "QEMU's `pentium` is family 5 model 4, the Pentium MMX (P55C): FPU, TSC, "
             "CX8, MMX, local APIC, no CMOV - what CONFIG_M586TSC kernels assume",
             pxe_extra=PXE_FIRMWARE_NEEDS),
    CpuModel("pentium_smp", "pentium", 2,
             "two of the above; SeaBIOS provides the MP table a CONFIG_SMP kernel "
             "needs to start the second CPU", pxe_extra=PXE_FIRMWARE_NEEDS),
    CpuModel("athlon", "athlon", 1,
             "QEMU's `athlon` is AuthenticAMD family 6 (K7) with CMOV, 3DNow! and "
             "3DNow!ext - what CONFIG_MK7 kernels use"),
    CpuModel("p4",
             "pentium3,family=15,model=2,stepping=9,+sse2,+clflush,"
             "model-id=Intel(R) Pentium(R) 4 CPU (QEMU pentium3+SSE2)",
             1,
             "QEMU has no Pentium 4 model: `pentium3` (P6 features, CMOV, PAE, SSE) "
             "plus SSE2 and CLFLUSH, reporting NetBurst family 15 model 2 "
             "(Northwood) - what CONFIG_MPENTIUM4 kernels check and use"),
)}


@dataclass(frozen=True)
class NicModel:
    name: str           # QEMU -device name
    drivers: str        # the kernel drivers that bind to it
    pxe_rom: str        # the iPXE ROM QEMU loads for it (Debian ipxe-qemu)


# NIC models that QEMU emulates and that have a PXE ROM.
NIC_MODELS: dict[str, NicModel] = {m.name: m for m in (
    NicModel("e1000", "e1000 (82540EM)", "efi-e1000.rom"),
    NicModel("rtl8139", "8139cp in 6.1 (binds first; 8139too also fits), 8139too in 2.4",
             "efi-rtl8139.rom"),
    NicModel("ne2k_pci", "ne2k-pci (+ 8390)", "efi-ne2k_pci.rom"),
)}

# Kernel NIC variants with no QEMU card: the node still boots over PXE with
# this card's firmware, and the kernel (which lacks its driver) finds no
# ethN.  What the boot then proves is "driver built, no card to bind".
KERNEL_ONLY_NICS: dict[str, str] = {
    "3c590": "3c59x (CONFIG_VORTEX): QEMU emulates no 3Com Vortex/Boomerang",
    "epic100": "epic100 (CONFIG_EPIC100): QEMU emulates no SMC EPIC/100",
}
FIRMWARE_NIC_FOR_KERNEL_ONLY = "e1000"

DEFAULT_MAC = "52:54:00:12:34:56"
# QEMU's pc machine keeps at most 3.5 GB below 4 GB, and from -m 3584 on it
# aligns that to 3 GB, mapping the rest above 4 GB where a non-PAE i386
# kernel cannot see it (measured: -m 3584 -> MemTotal ~3.0 GB).  More than
# 3584 MB adds nothing a node can use, so it is refused.
MEM_RANGE_MB = (16, 3584)


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalise_mac(mac: str) -> str:
    """aa:bb:cc:dd:ee:ff in lower case (also accepts dashes); the one MAC
    rule for QEMU's -device and pxelinux's 01-<mac> file names."""
    text = str(mac).strip().lower().replace("-", ":")
    if not _MAC.match(text):
        raise UserError(f"bad MAC address {mac!r}: expected six hex pairs like {DEFAULT_MAC}")
    if int(text[:2], 16) & 1:
        raise UserError(f"MAC address {mac!r} is a multicast address (odd first octet)")
    return text


def boot_nic_for(nic_variant: str) -> tuple[str, str | None]:
    """(QEMU NIC model to boot with, note for the result or None)."""
    if nic_variant in NIC_MODELS:
        return nic_variant, None
    if nic_variant in KERNEL_ONLY_NICS:
        return (FIRMWARE_NIC_FOR_KERNEL_ONLY,
                f"driver present, no card to bind: {KERNEL_ONLY_NICS[nic_variant]}; "
                f"booted with {FIRMWARE_NIC_FOR_KERNEL_ONLY} firmware, whose driver "
                f"the kernel lacks, so no ethN is expected")
    raise UserError(f"unknown NIC {nic_variant!r}: valid are "
                    f"{', '.join(sorted(NIC_MODELS) + sorted(KERNEL_ONLY_NICS))}")


def _require_file(path, what: str) -> Path:
    """The file as an absolute path (QEMU runs in the boot's own temporary
    directory, where a relative path would name nothing)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    return path.resolve()


class QemuMachine:
    """What every architecture shares; subclasses set the binary, its
    Debian package, the machine type and the CPU table."""

    binary: str
    package: str
    machine_type: str
    cpu_models: dict[str, CpuModel]

    def __init__(self, *, cpu: str, nic: str, mem_mb: int, mac: str = DEFAULT_MAC,
                 name: str | None = None):
        if cpu not in self.cpu_models:
            raise UserError(f"unknown CPU variant {cpu!r}: valid are "
                            f"{', '.join(sorted(self.cpu_models))}")
        if nic not in NIC_MODELS:
            raise UserError(f"unknown QEMU NIC model {nic!r}: valid are "
                            f"{', '.join(sorted(NIC_MODELS))}")
        low, high = MEM_RANGE_MB
        if not isinstance(mem_mb, int) or not low <= mem_mb <= high:
            raise UserError(f"memory {mem_mb!r} MB out of range: {low}..{high} MB")
        self.cpu = self.cpu_models[cpu]
        self.nic = NIC_MODELS[nic]
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

    def _nic_args(self, netdev_options: str, romfile: str | None = None) -> list[str]:
        # restrict=on: the guest reaches QEMU's built-in DHCP/TFTP and
        # nothing else - no host ports, no outside network.
        device = f"{self.nic.name},netdev=n0,mac={self.mac}"
        if romfile is not None:
            device += f",romfile={romfile}"
        return ["-netdev", f"user,id=n0,restrict=on{netdev_options}", "-device", device]

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

    def pxe_boot(self, tftp_root) -> list[str]:
        """Firmware PXE (iPXE ROM of the NIC) -> pxelinux.0 from tftp_root."""
        tftp_root = Path(tftp_root)
        _require_file(tftp_root / "pxelinux.0", "PXE boot loader")
        if "," in str(tftp_root.resolve()):
            raise UserError(f"TFTP root {tftp_root} contains a comma, which QEMU's "
                            f"-netdev option syntax cannot carry")
        return [self.qemu_path(), *self.common_args("pxe"),
                *self._nic_args(f",tftp={tftp_root.resolve()},bootfile=pxelinux.0"),
                "-boot", "n"]


class I386Pc(QemuMachine):
    """32-bit PC (i440FX): the cluster nodes of the Mosix era."""

    binary = "qemu-system-i386"
    package = "qemu-system-x86"
    machine_type = "pc"
    cpu_models = CPU_MODELS


ARCHES: dict[str, type[QemuMachine]] = {"i386": I386Pc}


def machine_for(arch: str = "i386", **kwargs) -> QemuMachine:
    if arch not in ARCHES:
        raise UserError(f"unknown architecture {arch!r}: valid are {', '.join(sorted(ARCHES))}")
    return ARCHES[arch](**kwargs)
