"""A TFTP root laid out as an LTSP server's, for PXE boots:

    pxelinux.0, ldlinux.c32              from Debian's pxelinux / syslinux-common
    pxelinux.cfg/default                 the default node, or a refusal
    pxelinux.cfg/01-aa-bb-cc-dd-ee-ff    one per node: its kernel, initrd, append
    lts/<line>/vmlinuz-<variant>         kernels
    lts/<line>/initrd-<variant>.img      initrds

pxelinux asks for 01-<mac> first (01 = Ethernet ARP type), so each node
boots its own kernel.  The tree is built in a temporary directory beside
root and renamed into place: a TFTP server never serves half a tree."""
import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

from common.errors import InfraError, UserError
from common.mac import normalise_mac
from common.paths import atomic_tree

PXELINUX = Path("/usr/lib/PXELINUX/pxelinux.0")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
_PACKAGE_OF = {PXELINUX: "pxelinux", LDLINUX: "syslinux-common"}

# The "kernel" pxelinux.cfg/default names when no node is the default: it
# does not exist, so pxelinux prints "Loading <this>... failed" on the serial
# console, which the watcher knows (kind "pxe-no-entry").  A SAY line would
# read better but pxelinux 6.04 does not send SAY output to the serial port
# (measured).
NO_ENTRY_KERNEL = "ltsp-mosix-no-PXE-entry-for-this-node"


def lts_path(line: str, kind: str, variant: str) -> str:
    """Where a variant's file lies below an LTSP server's TFTP root:
    lts/<line>/vmlinuz-<variant>, initrd-<variant>.img, System.map-<variant>,
    config-<variant>.  The release packages use the same names."""
    suffix = ".img" if kind == "initrd" else ""
    return f"lts/{line}/{kind}-{variant}{suffix}"


@dataclass(frozen=True)
class PxeNode:
    mac: str
    kernel: Path
    initrd: Path
    append: str                # kernel command line, without initrd=
    line: str = "linux-6.1"    # kernel line: lts/<line>/
    variant: str = "pentium"   # CPU/NIC variant: vmlinuz-<variant>
    label: str = ""            # pxelinux LABEL; default <line>-<variant>

    @property
    def pxe_label(self) -> str:
        return self.label or f"{self.line}-{self.variant}"

    @property
    def kernel_path(self) -> str:
        return lts_path(self.line, "vmlinuz", self.variant)

    @property
    def initrd_path(self) -> str:
        return lts_path(self.line, "initrd", self.variant)

    @property
    def config_name(self) -> str:
        return "01-" + normalise_mac(self.mac).replace(":", "-")


def _check_name(value: str, what: str) -> None:
    if not value or "/" in value or value.startswith(".") or any(c.isspace() for c in value):
        raise UserError(f"{what} {value!r} cannot be used in a TFTP path "
                        f"(no '/', whitespace or leading '.')")


def _validate(nodes: list[PxeNode], default: PxeNode | None) -> None:
    everyone = list(nodes) + ([default] if default is not None else [])
    seen_macs: dict[str, PxeNode] = {}
    for node in nodes:
        mac = normalise_mac(node.mac)
        if mac in seen_macs:
            raise UserError(f"MAC {mac} is given to two nodes "
                            f"({seen_macs[mac].pxe_label} and {node.pxe_label})")
        seen_macs[mac] = node
    sources: dict[str, Path] = {}
    for node in everyone:
        _check_name(node.line, "kernel line")
        _check_name(node.variant, "variant")
        if "\n" in node.append or "\n" in node.pxe_label:
            raise UserError(f"append line and label of {node.pxe_label} must be one line")
        for source, dest in ((node.kernel, node.kernel_path), (node.initrd, node.initrd_path)):
            source = Path(source)
            if not source.is_file():
                raise UserError(f"{source} (for {dest} of node {node.mac}) does not exist")
            other = sources.setdefault(dest, source)
            if other != source and not filecmp.cmp(other, source, shallow=False):
                raise UserError(f"{dest} would be both {other} and {source}: give the "
                                f"nodes different variant names")


def _boot_loader_files() -> list[Path]:
    for path, package in _PACKAGE_OF.items():
        if not path.is_file():
            raise InfraError(f"{path} not found: install the Debian package `{package}`")
    return list(_PACKAGE_OF)


def node_config(node: PxeNode) -> str:
    """pxelinux.cfg text booting this node straight away, console on serial
    too (so the PXE stage shows in the boot log)."""
    label = node.pxe_label
    return (
        f"# ltsp-mosix: {label} for {normalise_mac(node.mac)}\n"
        "SERIAL 0 115200\n"
        f"DEFAULT {label}\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        f"LABEL {label}\n"
        f"  KERNEL {node.kernel_path}\n"
        f"  APPEND initrd={node.initrd_path} {node.append}\n"
    )


def refusal_config() -> str:
    """pxelinux.cfg/default when no node is the default: fail loudly and at
    once, instead of booting some other node's kernel."""
    return (
        "# ltsp-mosix: no default node; every node needs its 01-<mac> file\n"
        "SERIAL 0 115200\n"
        "DEFAULT refuse\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL refuse\n"
        f"  KERNEL {NO_ENTRY_KERNEL}\n"
    )


def _populate(tree: Path, nodes: list[PxeNode], default: PxeNode | None) -> None:
    for loader in _boot_loader_files():
        shutil.copyfile(loader, tree / loader.name)
    cfg = tree / "pxelinux.cfg"
    cfg.mkdir()
    for node in list(nodes) + ([default] if default is not None else []):
        for source, dest in ((node.kernel, node.kernel_path), (node.initrd, node.initrd_path)):
            target = tree / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(source, target)
    for node in nodes:
        (cfg / node.config_name).write_text(node_config(node))
    (cfg / "default").write_text(node_config(default) if default else refusal_config())


def make_tftp_tree(root: Path, nodes: list[PxeNode], default: PxeNode | None = None) -> Path:
    """Build the TFTP root at root (replacing a previous tree there)."""
    _validate(nodes, default)
    with atomic_tree(Path(root)) as work:
        _populate(work, nodes, default)
    return Path(root)
