"""The kernel matrix as data: lines from configs/lines/*.toml, CPU variants
from configs/cpu/<cpu>.{config,toml}, NIC profiles from
configs/nic/<profile>.{config,toml}, network cards from configs/cards.toml.
The supported names are simply the files present (as TuxMake's targets are);
a missing field is an error naming the file and the field."""
import re
from dataclasses import dataclass
from pathlib import Path

from common import paths
from common.data import optional, read_toml, require
from common.errors import UserError
from common.paths import configs_dir
from kernels.sources import Listing, Signature, Source

DEFAULT_NIC_PROFILE = "all"     # variants with every NIC driver carry no suffix
CONFIG_SYSTEMS = ("kconfig", "cml1")


@dataclass(frozen=True)
class Variant:
    line: str
    cpu: str
    nic: str

    @property
    def name(self) -> str:
        return self.cpu if self.nic == DEFAULT_NIC_PROFILE else f"{self.cpu}-{self.nic}"

    @property
    def smp(self) -> bool:
        return self.cpu.endswith("_smp")


@dataclass(frozen=True)
class BootPlan:
    """A line's [boot] table: the memory sizes every variant boots at (with
    its profile's first boot NIC), the size its other boot NICs get once, and
    the size at which the initrd is forced above low memory (a copy of the
    bzImage with initrd_addr_max raised: its pass proves the kernel
    relocates it, and a release requires that pass)."""
    memory_mb: tuple[int, ...]
    extra_nics_at_mb: int
    path: str = "pxe"
    high_initrd_at_mb: int | None = None
    # The size at which the first boot NIC boots through the NIC's own PXE
    # ROM (the firmware a lab node runs); every other PXE boot starts iPXE as
    # QEMU's kernel, without the ROM's waits (lab.boot.machine.FIRMWARES).
    firmware_rom_at_mb: int | None = None


@dataclass(frozen=True)
class CpuSpec:
    """configs/cpu/<name>.toml: what a CPU variant needs beyond its fragment."""
    name: str
    package_name: str       # in release package names
    arch: str               # the architecture of the lines it belongs to (i386, x86_64)
    smp: int                # CPUs the boot test emulates
    qemu_cpu: str           # QEMU -cpu
    why: str                # why that model stands for the variant
    pxe_extra: str = ""     # -cpu features for PXE boots only (firmware needs)
    features: tuple[str, ...] = ()  # CPU flags its nodes offer a process (CRIU's restore check)


@dataclass(frozen=True)
class NicProfile:
    """configs/nic/<name>.toml: the cards the boot test boots the profile's
    kernels with (the first at every memory size, the others once)."""
    name: str
    boot_nics: tuple[str, ...]


@dataclass(frozen=True)
class Card:
    """configs/cards.toml: a network card a node may have."""
    name: str
    drivers: tuple[str, ...]    # kernel options whose driver binds to it
    note: str
    qemu: str | None = None     # QEMU -device emulating it, if any
    pxe_rom: str | None = None
    lava_tag: str = ""          # LAVA device tag of a lab node that has the card


@dataclass(frozen=True)
class Line:
    name: str
    description: str
    kernel: str
    config_system: str
    arch: str
    base_config: Path
    invariants: Path
    toolchain: str
    image: str
    package_name: str
    default_variant: str
    initrd_format: str
    source_date_epoch: int
    sources: tuple[Source, ...]
    base_target: str | None = None      # kconfig: make target that starts the config
    base_defconfig: str | None = None   # cml1: defconfig file inside the tree
    patches: str | None = None          # patches/<this>/series
    unsupported: str | None = None      # why this line cannot build here, if so
    boot: "BootPlan | None" = None       # the line's boot matrix ([boot])
    nic_profiles: tuple[str, ...] = ()   # the NIC profiles it builds (empty: all of configs/nic/)
    release_overlay: bool = True         # releases carry the Mosix node overlay (core package)
    deb_revision: int = 1                # Debian revision of the release packages: <kernel release>-<this>
    kernel_append: str = ""              # command line of its initrd format (configs/initrd-formats.toml)
    nfs_options: str = ""                # nfsroot= options of its NFS-root nodes
    map_file: str = "hpc.map"            # the node map's name below /etc

    @property
    def hash_file(self) -> Path:
        return configs_dir() / "lines" / f"{self.name}.hash"

    @property
    def kernel_source(self) -> Source:
        return next(s for s in self.sources if s.role == "kernel")

    @property
    def patch_sources(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.role == "patch")

    @property
    def series_file(self) -> Path | None:
        return paths.patches_dir() / self.patches / "series" if self.patches else None

    def variants(self) -> list[Variant]:
        """Every CPU variant of the line's architecture times its NIC profiles."""
        cpus = [cpu for cpu in cpu_names() if cpu_spec(cpu).arch == self.arch]
        return [Variant(self.name, cpu, nic) for cpu in cpus for nic in self.nic_profiles or nic_profiles()]

    def variant(self, name: str) -> Variant:
        for variant in self.variants():
            if variant.name == name:
                return variant
        valid = ", ".join(v.name for v in self.variants())
        raise UserError(f"unknown variant {name!r} for line {self.name}; valid variants: {valid}")

    def selected(self, names: str) -> list[Variant]:
        """`variants=pentium,p4` on the command line; all of the line's when empty."""
        if not names:
            return self.variants()
        return [self.variant(name.strip()) for name in names.split(",") if name.strip()]


def _names(folder: str) -> list[str]:
    """The names a folder's fragments give (a <name>.config each)."""
    return sorted(p.stem for p in (configs_dir() / folder).glob("*.config"))


def cpu_names() -> list[str]:
    return _names("cpu")


def nic_profiles() -> list[str]:
    profiles = _names("nic")
    # the all-driver profile first: it is the one boot tests exercise
    return sorted(profiles, key=lambda p: (p != DEFAULT_NIC_PROFILE, p))


def cpu_spec(cpu: str) -> CpuSpec:
    path = configs_dir() / "cpu" / f"{cpu}.toml"
    data = _data_beside_fragment(path, cpu_fragment(cpu))
    qemu = require(data, "qemu", dict, path)
    smp = require(data, "smp", int, path)
    if smp < 1:
        raise UserError(f"{path}: field 'smp' must be at least 1, not {smp}")
    return CpuSpec(name=cpu, package_name=require(data, "package_name", str, path),
                   arch=require(data, "arch", str, path), smp=smp,
                   qemu_cpu=require(qemu, "cpu", str, path, where="qemu"),
                   why=require(qemu, "why", str, path, where="qemu"),
                   pxe_extra=optional(qemu, "pxe_extra", str, path, "", where="qemu"),
                   features=tuple(optional(data, "features", list, path, [])))


def nic_profile(nic: str) -> NicProfile:
    path = configs_dir() / "nic" / f"{nic}.toml"
    data = _data_beside_fragment(path, nic_fragment(nic))
    boot_nics = require(data, "boot_nics", list, path)
    known = cards()
    unknown = [card for card in boot_nics if card not in known]
    if not boot_nics or unknown:
        raise UserError(f"{path}: field 'boot_nics' must list cards of {cards_file()} "
                        f"(unknown: {', '.join(map(str, unknown)) or 'none given'}; "
                        f"known: {', '.join(known)})")
    return NicProfile(name=nic, boot_nics=tuple(boot_nics))


def _data_beside_fragment(path: Path, fragment: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing: {fragment.name} needs its data file beside it")
    return read_toml(path)


def cards_file() -> Path:
    return configs_dir() / "cards.toml"


def cards() -> dict[str, Card]:
    path = cards_file()
    data = read_toml(path)
    table = require(data, "cards", dict, path)
    found = {}
    for name, card in table.items():
        where = f"cards.{name}"
        if not isinstance(card, dict):
            raise UserError(f"{path}: [{where}] must be a table, not {card!r}")
        drivers = require(card, "drivers", list, path, where=where)
        qemu = optional(card, "qemu", str, path, where=where)
        found[name] = Card(name=name, drivers=tuple(drivers), note=require(card, "note", str, path, where=where),
                           qemu=qemu, pxe_rom=require(card, "pxe_rom", str, path, where=where) if qemu else None,
                           lava_tag=require(card, "lava_tag", str, path, where=where))
    return found


def firmware_nic() -> Card:
    """The emulated card that boots kernels whose own card QEMU lacks."""
    path = cards_file()
    name = require(read_toml(path), "firmware_nic", str, path)
    card = cards().get(name)
    if card is None or card.qemu is None:
        raise UserError(f"{path}: firmware_nic {name!r} must be a card QEMU emulates")
    return card


def cpu_fragment(cpu: str) -> Path:
    return configs_dir() / "cpu" / f"{cpu}.config"


def nic_fragment(nic: str) -> Path:
    return configs_dir() / "nic" / f"{nic}.config"


def line_names() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "lines").glob("*.toml"))


def default_line_name() -> str:
    path = configs_dir() / "default.toml"
    return read_toml(path)["line"]


def load_line(name: str | None = None) -> Line:
    name = name or default_line_name()
    path = configs_dir() / "lines" / f"{name}.toml"
    if not path.is_file():
        raise UserError(f"unknown line {name!r}; valid lines: {', '.join(line_names())}")
    data = read_toml(path)
    try:
        return _line_from_data(name, data, path)
    except KeyError as missing:
        raise UserError(f"{path}: missing required key {missing}") from None


REQUIRED_KEYS = ("description", "kernel", "config_system", "arch", "base_config", "invariants",
                 "toolchain", "image", "package_name", "default_variant", "initrd_format",
                 "source_date_epoch", "sources", "boot", "nfs_options", "map_file")


def initrd_append(initrd_format: str, where: Path) -> str:
    """The kernel command line of an initrd format (configs/initrd-formats.toml)."""
    path = configs_dir() / "initrd-formats.toml"
    formats = read_toml(path)
    if initrd_format not in formats:
        raise UserError(f"{where}: initrd_format {initrd_format!r} is not a table of {path} "
                        f"(known: {', '.join(sorted(formats))})")
    return require(formats[initrd_format], "append", str, path, where=initrd_format)


def _line_from_data(name: str, data: dict, path: Path) -> Line:
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise UserError(f"{path}: missing required key(s): {', '.join(missing)}")
    if data["config_system"] not in CONFIG_SYSTEMS:
        raise UserError(f"{path}: config_system must be one of {CONFIG_SYSTEMS}, "
                        f"not {data['config_system']!r}")
    sources = tuple(_source_from_data(name, s, path) for s in data.get("sources", []))
    if sum(s.role == "kernel" for s in sources) != 1:
        raise UserError(f"{path}: a line needs exactly one source with role = \"kernel\"")
    line = Line(
        name=name,
        description=data["description"],
        kernel=data["kernel"],
        config_system=data["config_system"],
        arch=data["arch"],
        base_config=configs_dir() / "base" / data["base_config"],
        invariants=configs_dir() / "invariants" / data["invariants"],
        toolchain=data["toolchain"],
        image=data["image"],
        package_name=data["package_name"],
        default_variant=data["default_variant"],
        initrd_format=data["initrd_format"],
        source_date_epoch=int(data["source_date_epoch"]),
        sources=sources,
        base_target=data.get("base_target"),
        base_defconfig=data.get("base_defconfig"),
        patches=data.get("patches"),
        unsupported=data.get("unsupported"),
        boot=_boot_plan(data, path),
        nic_profiles=_line_nic_profiles(data, path),
        release_overlay=optional(data, "release_overlay", bool, path, True),
        deb_revision=optional(data, "deb_revision", int, path, 1),
        kernel_append=initrd_append(data["initrd_format"], path),
        nfs_options=require(data, "nfs_options", str, path),
        map_file=require(data, "map_file", str, path),
    )
    if not re.fullmatch(r"[A-Za-z0-9=,]+", line.nfs_options):
        raise UserError(f"{path}: nfs_options {line.nfs_options!r}: comma-separated mount options only")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", line.map_file):
        raise UserError(f"{path}: map_file {line.map_file!r} must be a file name")
    if line.deb_revision < 1:
        raise UserError(f"{path}: deb_revision must be 1 or more, not {line.deb_revision}")
    for fragment in (line.base_config, line.invariants):
        if not fragment.is_file():
            raise UserError(f"{path}: fragment {fragment} does not exist")
    line.variant(line.default_variant)
    return line


def _line_nic_profiles(data: dict, path: Path) -> tuple[str, ...]:
    chosen = optional(data, "nic_profiles", list, path, [])
    unknown = [name for name in chosen if name not in nic_profiles()]
    if unknown:
        raise UserError(f"{path}: field 'nic_profiles' names unknown profiles {unknown}; "
                        f"valid: {', '.join(nic_profiles())}")
    return tuple(chosen)


def _boot_plan(data: dict, path: Path) -> BootPlan:
    boot = require(data, "boot", dict, path)
    memory = require(boot, "memory_mb", list, path, where="boot")
    if not memory or not all(isinstance(m, int) and m > 0 for m in memory):
        raise UserError(f"{path}: field 'boot.memory_mb' must list memory sizes in MB, not {memory!r}")
    extra = require(boot, "extra_nics_at_mb", int, path, where="boot")
    high = optional(boot, "high_initrd_at_mb", int, path, where="boot")
    rom = optional(boot, "firmware_rom_at_mb", int, path, where="boot")
    for field, value in (("extra_nics_at_mb", extra), ("high_initrd_at_mb", high),
                         ("firmware_rom_at_mb", rom)):
        if value is not None and value not in memory:
            raise UserError(f"{path}: field 'boot.{field}' = {value} is not one of boot.memory_mb "
                            f"({', '.join(map(str, memory))})")
    return BootPlan(memory_mb=tuple(memory), extra_nics_at_mb=extra,
                    path=optional(boot, "path", str, path, "pxe", where="boot"), high_initrd_at_mb=high,
                    firmware_rom_at_mb=rom)


def _source_from_data(line: str, data: dict, path: Path) -> Source:
    signature = None
    if "signature" in data:
        sig = data["signature"]
        if sig.get("covers") not in ("file", "tar"):
            raise UserError(f"{path}: source {data.get('name')}: signature.covers must be 'file' or 'tar'")
        signature = Signature(
            url=sig["url"], covers=sig["covers"],
            keys=tuple(k.replace(" ", "").upper() for k in sig["keys"]),
            accept_revoked=bool(sig.get("accept_revoked", False)))
    listing = None
    if "listing" in data:
        listed = data["listing"]
        if not listed.get("urls") or not listed.get("keys"):
            raise UserError(f"{path}: source {data.get('name')}: listing needs `urls` and `keys`")
        listing = Listing(urls=tuple(listed["urls"]),
                          keys=tuple(k.replace(" ", "").upper() for k in listed["keys"]))
    return Source(
        line=line, name=data["name"], file=data["file"], listing=listing,
        urls=tuple(data.get("urls", ())), backup=tuple(data.get("backup", ())),
        signature=signature, trust=data.get("trust", "pinned"),
        package=data.get("package"), path=data.get("path"),
        role=data.get("role", "kernel"))
