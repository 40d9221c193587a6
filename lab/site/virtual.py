"""The virtual site network: what an LTSP server is to its nodes, in a
network namespace of our own.  One context manager for every run that
boots nodes from a server (the cluster test, the migration):

    with VirtualSite(cluster, state_dir, root=..., dnsmasq_conf=..., say=say) as site:
        tap = site.add_tap()          # one per QEMU node: -netdev tap,ifname=<tap>
        ...

inside the namespace: a bridge holding the cluster's server address,
rpcbind + nfs-ganesha exporting the node root as the cluster's nfs_root
(plus any extra exports), dnsmasq on its generated config (DHCP by MAC,
TFTP).  Namespaces a killed run left are removed first.  Teardown is one
ExitStack - dnsmasq, the NFS server, then the namespace with its bridge and
taps - on success, on failure, on Ctrl-C and on SIGTERM; afterwards
`removed` says whether the namespace is gone."""
import signal
import subprocess
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common.errors import UserError
from common.procs import die_with_parent
from lab.site.netns import NetNamespace, remove_stale_namespaces, require_tool
from lab.site.nfs import NfsServer
from lab.spawn import stop_process, wait_for_daemon

BRIDGE = "br0"


@contextmanager
def sigterm_as_interrupt():
    """A SIGTERM (doit or CI stopping us) gets the teardown Ctrl-C gets:
    Python's default would end the process without running any `finally`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        # Once: a second SIGTERM must not cut the teardown the first started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Dnsmasq:
    """dnsmasq in the foreground in a namespace, config from rootfs.dnsmasq."""

    def __init__(self, conf: Path, state_dir: Path, namespace: NetNamespace,
                 startup_timeout: float = 20.0):
        self.conf, self.state_dir, self.namespace = Path(conf), Path(state_dir), namespace
        self.log_path = self.state_dir / "dnsmasq.log"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Dnsmasq":
        dnsmasq = require_tool("dnsmasq", "dnsmasq-base")
        check = subprocess.run([dnsmasq, "--test", f"--conf-file={self.conf}"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise UserError(f"dnsmasq rejects {self.conf}: {check.stderr.strip()}")
        self.log_path.unlink(missing_ok=True)
        argv = [dnsmasq, "--keep-in-foreground", f"--conf-file={self.conf}",
                f"--pid-file={self.state_dir / 'dnsmasq.pid'}",
                f"--dhcp-leasefile={self.state_dir / 'dnsmasq.leases'}",
                f"--log-facility={self.log_path}", "--log-dhcp",
                # It stays root: it lives alone in our namespace, and the
                # TFTP tree may sit in a private (0700) test directory.
                "--user=root"]
        stderr_path = self.state_dir / "dnsmasq.stderr"
        with open(stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(self.namespace.argv(argv), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=stderr,
                                         start_new_session=True, preexec_fn=die_with_parent)

        def serving_tftp() -> bool:
            return self.log_path.is_file() and "TFTP root is" in self.log_path.read_text(errors="replace")
        try:
            wait_for_daemon(self.proc, "dnsmasq", serving_tftp, timeout=self.startup_timeout,
                            logs=(stderr_path, self.log_path))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.proc)


class VirtualSite:
    def __init__(self, cluster, state_dir: Path, *, root: Path, dnsmasq_conf: Path, say,
                 access: str = "RW", extra_exports=()):
        self.cluster, self.state_dir = cluster, Path(state_dir)
        self.root, self.dnsmasq_conf, self.say = Path(root), Path(dnsmasq_conf), say
        self.access, self.extra_exports = access, tuple(extra_exports)
        self.namespace = NetNamespace()
        self.nfs_ready_seconds: float | None = None
        self.removed: bool | None = None
        self._taps = 0
        self._stack: ExitStack | None = None

    def __enter__(self) -> "VirtualSite":
        for name in remove_stale_namespaces():
            self.say(f"removed namespace {name}, left behind by a run that was killed")
        cluster = self.cluster
        with ExitStack() as stack:
            stack.callback(self._note_removed)
            stack.enter_context(sigterm_as_interrupt())
            stack.enter_context(self.namespace)
            self.namespace.add_bridge(BRIDGE, f"{cluster.server}/{cluster.subnet.prefixlen}")
            server = stack.enter_context(NfsServer(self.root, self.state_dir / "nfs", pseudo=cluster.nfs_root,
                                                   namespace=self.namespace, access=self.access,
                                                   extra_exports=self.extra_exports))
            self.nfs_ready_seconds = server.ready_seconds
            stack.enter_context(Dnsmasq(self.dnsmasq_conf, self.state_dir, self.namespace))
            self.say(f"namespace {self.namespace.name}: {BRIDGE} {cluster.server}/{cluster.subnet.prefixlen}, "
                     f"NFS {cluster.server}:{cluster.nfs_root} (ready in {server.ready_seconds}s), "
                     f"dnsmasq DHCP+TFTP")
            self._stack = stack.pop_all()
        return self

    def add_tap(self) -> str:
        """A tap port on the bridge for the next node: tap0, tap1, ..."""
        tap = f"tap{self._taps}"
        self._taps += 1
        self.namespace.add_tap(tap, BRIDGE)
        return tap

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()

    def _note_removed(self) -> None:
        self.removed = not self.namespace.exists()
