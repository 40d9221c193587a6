"""One node with its root on NFS, on QEMU's user network, the NFS server
in a namespace of its own (or the host's): boot_nfsroot(kernel, state_dir)
-> NfsBootResult.  The node passes when the console watcher's verdict is
pass (the init ran from the NFS root to its end) AND the server side
agrees: the file the node wrote is in the export with the node's kernel
release and address."""
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from initrd.nfsroot import compile_nfsinit, make_nfsroot_initrd, make_node_root
from kernels import matrix
from lab.boot.machine import IPXE_USER_NET_SCRIPT, USER_NET_HOST, machine_for
from lab.boot.watcher import PASS, watch_stream
from lab.nodes import NODE_APPEND, InitReport, parse_init_report, root_problems, server_side
from lab.site.netns import NetNamespace
from lab.site.nfs import NfsServer
from lab.site.virtual import sigterm_as_interrupt
from lab.spawn import running
from rootfs.pxetree import PxeNode, make_tftp_tree

# QEMU user networking: the host (here: the namespace's loopback) is 10.0.2.2.
USER_NET_SERVER = USER_NET_HOST
DEFAULT_PSEUDO = "/opt/ltsp/i386"        # LTSP 3's node root, as cluster.toml has it
NFS_BOOT_TIMEOUT = 90.0
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")   # also safe in QEMU's -netdev


@dataclass
class NfsBootResult:
    verdict: str
    kind: str | None
    console_line: str | None
    seconds: float | None            # QEMU start -> marker
    log_path: Path
    path: str                        # "direct" | "pxe"
    append: str
    report: InitReport
    booted: dict | None              # the file found on the server side
    nfs_ready_seconds: float | None
    namespace: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS and not self.problems


def nfsroot_append(server: str, mount_path: str, line: str = "linux-6.1",
                   extra: str = NODE_APPEND) -> str:
    """The node's command line: the line's NFS root options (configs/lines/)."""
    nfsroot = f"{server}:{mount_path},{matrix.load_line(line).nfs_options}"
    return f"{extra} ip=dhcp root=/dev/nfs nfsroot={nfsroot}"


def boot_nfsroot(kernel, state_dir, *, path: str = "direct", cpu: str = "pentium",
                 nic: str = "e1000", mem_mb: int = 256, hostname: str = "nfsnode1",
                 mac: str = "52:54:00:67:01:01", pseudo: str = DEFAULT_PSEUDO,
                 line: str = "linux-6.1", timeout: float = NFS_BOOT_TIMEOUT,
                 isolate: bool = True, firmware: str = "ipxe") -> NfsBootResult:
    """Boot one node with its root on NFS served from state_dir/root.

    isolate=True runs ganesha, rpcbind and QEMU in a NetNamespace of their
    own: QEMU's user network then reaches only that namespace's loopback
    (10.0.2.2 -> 127.0.0.1 there), not the host's network.  isolate=False
    serves from the host (reusing a running rpcbind).  firmware: what fetches
    pxelinux.0 on path="pxe" (lab.boot.machine.FIRMWARES)."""
    if path not in ("direct", "pxe"):
        raise UserError(f"unknown boot path {path!r}: valid are direct, pxe")
    if not _HOSTNAME.match(hostname):
        raise UserError(f"host name {hostname!r} is not a simple name (a-z, 0-9, '-')")
    kernel = Path(kernel)
    if not kernel.is_file():
        raise UserError(f"kernel image {kernel} does not exist")
    state_dir = Path(state_dir).resolve()
    machine = machine_for(cpu=cpu, nic=nic, mem_mb=mem_mb, mac=mac,
                          name=f"ltsp-mosix-nfsroot-{hostname}")
    qemu = machine.qemu_path()
    root = make_node_root(state_dir / "root", compile_nfsinit(state_dir / "init"))
    append = nfsroot_append(USER_NET_SERVER, pseudo, line)
    netdev = f"user,id=n0,hostname={hostname}"
    if path == "direct":
        tail = ["-kernel", str(kernel), "-append", append]
        romfile = ""                    # no PXE ROM: QEMU loads the kernel itself
    else:
        node = PxeNode(machine.mac, kernel, make_nfsroot_initrd(state_dir / "initrd-nfsroot.cpio"),
                       append, variant="nfsroot")
        tftp = make_tftp_tree(state_dir / "tftp", [node])
        netdev += f",tftp={tftp},bootfile=pxelinux.0"
        romfile, tail = machine.firmware_args(firmware, IPXE_USER_NET_SCRIPT)
    argv = [qemu, *machine.common_args(path), "-netdev", netdev, "-device", machine.nic_device(romfile), *tail]
    log_path = state_dir / "logs" / f"{hostname}-{path}.log"
    with ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())
        namespace = stack.enter_context(NetNamespace()) if isolate else None
        server = stack.enter_context(NfsServer(root, state_dir / "nfs", pseudo=pseudo,
                                               namespace=namespace))
        if namespace is not None:
            argv = namespace.argv(argv)
        with running(argv, cwd=state_dir) as (child, started_at):
            watch = watch_stream(child, timeout=timeout, log_path=log_path, started_at=started_at)
    report = parse_init_report(watch.transcript)
    booted, problems = server_side(root, report.host, report)
    if watch.verdict == PASS:
        problems += root_problems(report, f"{USER_NET_SERVER}:{pseudo}")
    return NfsBootResult(watch.verdict, watch.kind, watch.line, watch.seconds, log_path, path,
                         append, report, booted, server.ready_seconds,
                         namespace.name if namespace else None, problems)


