"""The node root a server exports over NFS, for NFS-root boots:

    sbin/init                  nfsinit.c, compiled like init.c (static i386, no libc)
    dev/console                char 5,1 (the init opens it; the kernel has no devtmpfs here)
    proc/ sys/                 mount points
    etc/ltsp-mosix/peers       optional: the cluster's node addresses, one a line
    ltsp-mosix/done-<ip>       one empty file per peer, which that node fills
                               with its ping results (see nfsinit.c: why empty
                               files must exist before the boot)

What a node leaves behind, read on the server side:
    booted-<host>              "host ...\\nrelease ...\\nip ...\\n"
    ltsp-mosix/done-<ip>       "ping <ip> ok|failed\\n"... "done\\n"

And the PXE initrd of an NFS-root node: an initramfs *without* /init, so
that 6.1 goes on to mount root=/dev/nfs (an initramfs with /init would run
that instead and never mount the NFS root)."""
import ipaddress
import os
import shutil
import stat
from pathlib import Path

from common.errors import InfraError, UserError
from common.paths import atomic_write_bytes
from initrd.build import compile_init
from initrd.cpio import CpioEntry, newc_archive

NFSINIT_SOURCE = Path(__file__).resolve().parent / "nfsinit.c"
PEERS_FILE = "etc/ltsp-mosix/peers"
DONE_DIR = "ltsp-mosix"
CONSOLE = (5, 1)


def compile_nfsinit(out_dir: Path) -> Path:
    """out_dir/init built from nfsinit.c (same compiler flags and marker as init.c)."""
    return compile_init(Path(out_dir).resolve(), NFSINIT_SOURCE)


def booted_file(root: Path, host: str) -> Path:
    return Path(root) / f"booted-{host}"


def done_file(root: Path, ip) -> Path:
    return Path(root) / DONE_DIR / f"done-{ipaddress.IPv4Address(str(ip))}"


def _make_console(path: Path) -> None:
    if path.exists() or path.is_symlink():
        if path.is_char_device() and os.major(path.stat().st_rdev) == CONSOLE[0] \
                and os.minor(path.stat().st_rdev) == CONSOLE[1]:
            return
        path.unlink()
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(*CONSOLE))
    except PermissionError:
        raise InfraError(f"cannot create the device node {path} (mknod needs root); "
                         f"the NFS-root node has no devtmpfs to fall back on") from None


def make_node_root(root: Path, init_binary: Path, peers=()) -> Path:
    """(Re)make the node root at root.  Results of an earlier boot (booted-*,
    done files) are removed, so what the server finds afterwards is this
    boot's.  peers: the cluster's node addresses (each node skips its own)."""
    root = Path(root)
    init_binary = Path(init_binary)
    if not init_binary.is_file():
        raise UserError(f"node init {init_binary} does not exist (compile_nfsinit builds it)")
    addresses = [ipaddress.IPv4Address(str(ip)) for ip in peers]
    if len(set(addresses)) != len(addresses):
        raise UserError(f"node root peers list has duplicates: {[str(a) for a in addresses]}")
    for directory in ("sbin", "dev", "etc/ltsp-mosix", DONE_DIR):
        (root / directory).mkdir(parents=True, exist_ok=True)
    for directory in ("proc", "sys"):
        (root / directory).mkdir(mode=0o555, exist_ok=True)
    root.chmod(0o755)
    for old in list(root.glob("booted-*")) + list((root / DONE_DIR).glob("done-*")):
        old.unlink()
    shutil.copyfile(init_binary, root / "sbin" / "init")
    (root / "sbin" / "init").chmod(0o755)
    _make_console(root / "dev" / "console")
    peers_file = root / PEERS_FILE
    if addresses:
        peers_file.write_text("".join(f"{ip}\n" for ip in addresses))
        for ip in addresses:
            done = done_file(root, ip)
            done.write_text("")
            done.chmod(0o666)
    else:
        peers_file.unlink(missing_ok=True)
    return root


def parse_booted(text: str) -> dict[str, str]:
    """booted-<host> -> {"host": ..., "release": ..., "ip": ...}."""
    facts = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key and value:
            facts[key] = value.strip()
    return facts


def parse_done(text: str) -> tuple[dict[str, bool], bool]:
    """done-<ip> -> ({peer ip: reply received?}, complete?)."""
    pings, complete = {}, False
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["ping"] and len(words) == 3:
            pings[words[1]] = words[2] == "ok"
        elif words == ["done"]:
            complete = True
    return pings, complete


def nfsroot_initrd_entries() -> list[CpioEntry]:
    """/dev/console only: no /init, so the kernel mounts root= itself."""
    return [CpioEntry.directory("dev"), CpioEntry.char_device("dev/console", *CONSOLE)]


def make_nfsroot_initrd(out: Path) -> Path:
    return atomic_write_bytes(Path(out), newc_archive(nfsroot_initrd_entries()))
