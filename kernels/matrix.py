"""The kernel matrix as data: lines from configs/lines/*.toml, CPU and NIC
fragments from configs/cpu/ and configs/nic/.  The supported names are
simply the files present (as TuxMake's targets are)."""
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kernels import paths
from kernels.errors import UserError
from kernels.sources import Listing, Signature, Source

DEFAULT_NIC_PROFILE = "all"     # variants with every NIC driver carry no suffix
CONFIG_SYSTEMS = ("kconfig", "cml1")


def configs_dir() -> Path:
    """configs/ of the project, movable for tests and sites."""
    return Path(os.environ.get("LTSP_MOSIX_CONFIGS", paths.CONFIGS)).resolve()


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
    # The boot at this memory size forces the initrd above low memory (a
    # copy of the bzImage with initrd_addr_max raised): its pass proves the
    # kernel relocates it, and a release requires that pass.
    high_initrd_at_mb: int | None = None

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
        return [Variant(self.name, cpu, nic) for cpu in cpu_names() for nic in nic_profiles()]

    def variant(self, name: str) -> Variant:
        for variant in self.variants():
            if variant.name == name:
                return variant
        valid = ", ".join(v.name for v in self.variants())
        raise UserError(f"unknown variant {name!r} for line {self.name}; valid variants: {valid}")


def _names(folder: str) -> list[str]:
    return sorted(p.stem for p in (configs_dir() / folder).glob("*.config"))


def cpu_names() -> list[str]:
    return _names("cpu")


def nic_profiles() -> list[str]:
    profiles = _names("nic")
    # the all-driver profile first: it is the one boot tests exercise
    return sorted(profiles, key=lambda p: (p != DEFAULT_NIC_PROFILE, p))


def cpu_fragment(cpu: str) -> Path:
    return configs_dir() / "cpu" / f"{cpu}.config"


def nic_fragment(nic: str) -> Path:
    return configs_dir() / "nic" / f"{nic}.config"


def line_names() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "lines").glob("*.toml"))


def default_line_name() -> str:
    path = configs_dir() / "default.toml"
    return _read_toml(path)["line"]


def load_line(name: str | None = None) -> Line:
    name = name or default_line_name()
    path = configs_dir() / "lines" / f"{name}.toml"
    if not path.is_file():
        raise UserError(f"unknown line {name!r}; valid lines: {', '.join(line_names())}")
    data = _read_toml(path)
    try:
        return _line_from_data(name, data, path)
    except KeyError as missing:
        raise UserError(f"{path}: missing required key {missing}") from None


REQUIRED_KEYS = ("description", "kernel", "config_system", "arch", "base_config", "invariants",
                 "toolchain", "image", "package_name", "default_variant", "initrd_format",
                 "source_date_epoch", "sources")


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
        high_initrd_at_mb=data.get("high_initrd_at_mb"),
    )
    for fragment in (line.base_config, line.invariants):
        if not fragment.is_file():
            raise UserError(f"{path}: fragment {fragment} does not exist")
    line.variant(line.default_variant)
    return line


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


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None
