"""NFS-root boots: one node on QEMU's user network, and a virtual cluster
(server + nodes on one bridge) inside a network namespace of our own.

    boot_nfsroot(kernel, state_dir)                    -> NfsBootResult
    run_cluster_test(cluster, {variant: bzImage}, state_dir) -> ClusterResults

The node init is initrd/nfsinit.c on the exported root (initrd/nfsroot.py
lays the root out).  A node passes when the console watcher's verdict is
pass (marker reached: the init ran from the NFS root to its end) AND the
server side agrees: the file the node wrote is in the export with the
node's kernel release and address, and (cluster) every node got ICMP echo
replies from every other node.

Cluster run: the virtual site (lab/site/virtual.py: a namespace with the server's
bridge, NFS and dnsmasq on the config rootfs.dnsmasq generates, TFTP from
the tree rootfs.tftp.write_tftp_tree writes: pxelinux.cfg/01-<mac> per
node, each with its own kernel variant) and one QEMU per node on a tap of
its own, started one after another and running together; the QEMUs are
killed and reaped by lab.spawn.running, also when a watch is cancelled,
before the site comes down."""
import dataclasses
import json
import re
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from common import paths
from common.errors import UserError
from common.paths import atomic_write_text
from common.records import jsonable
from initrd.nfsroot import (booted_file, compile_nfsinit, done_file, make_nfsroot_initrd, make_node_root,
                            parse_booted, parse_done)
from kernels import matrix
from lab.boot.facts import parse_boot_facts
from lab.boot.machine import IPXE_DHCP_SCRIPT, IPXE_USER_NET_SCRIPT, USER_NET_HOST, machine_for, nic_models
from lab.site.netns import NetNamespace
from lab.site.nfs import NfsServer
from lab.spawn import running
from lab.site.virtual import BRIDGE, VirtualSite, sigterm_as_interrupt
from lab.boot.watcher import FAIL, PASS, clean_line, watch_stream
from rootfs.cluster import Cluster
from rootfs.dnsmasq import write_dnsmasq_conf
from rootfs.pxetree import PxeNode, make_tftp_tree
from rootfs.tftp import BootImages, pxe_nodes, write_tftp_tree

# Kernel command line besides ip=/root=/nfsroot= (rootfs.tftp.node_append
# adds those): serial console, a panic ends QEMU, the init on the NFS root.
NODE_APPEND = "console=ttyS0,115200 panic=1 rw init=/sbin/init"
# QEMU user networking: the host (here: the namespace's loopback) is 10.0.2.2.
USER_NET_SERVER = USER_NET_HOST
# The cluster's nodes fetch pxelinux.0 with iPXE started as QEMU's kernel
# (no ROM banner or ProxyDHCP wait); the boot test keeps a ROM boot per variant.
CLUSTER_FIRMWARE = "ipxe"
DEFAULT_PSEUDO = "/opt/ltsp/i386"        # LTSP 3's node root, as cluster.toml has it
# The init prints this once it runs from the NFS root and knows its address:
# the end of the "boot" (phase 1) of a cluster node.
INIT_IP_PREFIX = "ltsp-mosix: ip "

NFS_BOOT_TIMEOUT = 90.0
CLUSTER_TIMEOUT = 300.0      # per node, QEMU start -> marker (PXE ~25 s + pings + barrier)
STAGGER_SECONDS = 3.0        # between QEMU starts: iPXE start-up is the CPU-heavy part

_IP = re.compile(r"^ltsp-mosix: ip (\S+)(?: dev (\S+))?")
_HOST = re.compile(r"^ltsp-mosix: host (\S+)")
_ROOT = re.compile(r"^ltsp-mosix: root (.+)")
_PING = re.compile(r"^ltsp-mosix: ping (\S+) (ok|FAILED)")
_PEERS = re.compile(r"^ltsp-mosix: peers (.+)")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")   # also safe in QEMU's -netdev
_LOADING = re.compile(r"Loading (\S*vmlinuz\S*?)(?:\.\.\.| |$)")


@dataclass
class InitReport:
    """What nfsinit.c said on the console."""
    kernel_release: str | None = None
    host: str | None = None
    root: str | None = None
    ip: str | None = None
    device: str | None = None
    pings: dict[str, bool] = field(default_factory=dict)
    peers: str | None = None           # "done", "none", "timeout waiting for <ip>"
    loaded_kernel: str | None = None   # pxelinux "Loading <path>"


def parse_init_report(transcript: str) -> InitReport:
    facts = parse_boot_facts(transcript)
    report = InitReport(kernel_release=facts.kernel.split()[0] if facts.kernel else None)
    for raw in transcript.splitlines():
        line = clean_line(raw)
        if report.loaded_kernel is None and (found := _LOADING.search(line)):
            report.loaded_kernel = found.group(1)
        if found := _IP.match(line):
            report.ip, report.device = found.group(1), found.group(2)
        elif found := _HOST.match(line):
            report.host = found.group(1)
        elif found := _ROOT.match(line):
            report.root = found.group(1)
        elif found := _PING.match(line):
            report.pings[found.group(1)] = found.group(2) == "ok"
        elif found := _PEERS.match(line):
            report.peers = found.group(1)
    return report


def _combine_logs(first: Path, second: Path) -> None:
    """Phase 2's log appended to phase 1's: one console log per node."""
    if second.is_file():
        with open(first, "a", encoding="utf-8") as out:
            out.write(second.read_text(encoding="utf-8", errors="replace"))
        second.unlink()


def _server_side(root: Path, host: str | None, report: InitReport) -> tuple[dict | None, list[str]]:
    """The booted-<host> file the node wrote, checked against its console."""
    problems = []
    if not host:
        return None, ["the node reported no host name, so its booted- file is unknown"]
    path = booted_file(root, host)
    if not path.is_file():
        return None, [f"{path.name} is not in the export {root}: the node did not write its NFS root"]
    booted = parse_booted(path.read_text())
    if report.kernel_release and booted.get("release") != report.kernel_release:
        problems.append(f"{path.name} says release {booted.get('release')}, "
                        f"the console {report.kernel_release}")
    if report.ip and booted.get("ip") != report.ip:
        problems.append(f"{path.name} says ip {booted.get('ip')}, the console {report.ip}")
    return booted, problems


# -- one node, QEMU user networking ----------------------------------------------

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
    booted, problems = _server_side(root, report.host, report)
    if watch.verdict == PASS:
        problems += _root_problems(report, f"{USER_NET_SERVER}:{pseudo}")
    return NfsBootResult(watch.verdict, watch.kind, watch.line, watch.seconds, log_path, path,
                         append, report, booted, server.ready_seconds,
                         namespace.name if namespace else None, problems)


def _root_problems(report: InitReport, source: str) -> list[str]:
    if not report.root:
        return ["the init did not report its root mount"]
    words = report.root.split()
    if len(words) < 4 or words[1] != "/" or words[2] != "nfs":
        return [f"root is {report.root!r}, not {source} on / over nfs"]
    server = source.split(":")[0]
    # 6.1 names the export; 2.4 shows "/dev/root" with the server in addr=
    if words[0] != source and not (words[0] == "/dev/root" and f"addr={server}" in words[3]):
        return [f"root is {report.root!r}, not {source} on / over nfs"]
    return []


# -- the cluster ---------------------------------------------------------------------

@dataclass
class NodeResult:
    name: str
    variant: str
    cpu: str
    nic: str
    mac: str
    expected_ip: str
    verdict: str = FAIL
    kind: str | None = "not-started"
    console_line: str | None = None
    boot_seconds: float | None = None    # QEMU start -> init running from NFS root, IP known
    seconds: float | None = None         # QEMU start -> marker (after pings and the barrier)
    log_path: Path | None = None
    report: InitReport = field(default_factory=InitReport)
    booted: dict | None = None           # server side: booted-<name>
    done: dict[str, bool] = field(default_factory=dict)   # server side: done-<ip>
    problems: list[str] = field(default_factory=list)
    route: str = f"pxe/{CLUSTER_FIRMWARE}"      # how the node reached its kernel

    @property
    def ip(self) -> str | None:
        return self.report.ip

    @property
    def pings(self) -> dict[str, bool]:
        return self.report.pings

    @property
    def passed(self) -> bool:
        return self.verdict == PASS and not self.problems


class ClusterResults(list):
    """The per-node results (a list, in node order), plus the run's facts."""

    def __init__(self, results=(), **facts):
        super().__init__(results)
        self.namespace: str | None = facts.get("namespace")
        self.namespace_removed: bool | None = facts.get("namespace_removed")
        self.nfs_ready_seconds: float | None = facts.get("nfs_ready_seconds")
        self.state_dir: Path | None = facts.get("state_dir")
        self.seconds: float | None = facts.get("seconds")

    @property
    def passed(self) -> bool:
        return bool(self) and all(r.passed for r in self) and bool(self.namespace_removed)


def default_state_dir(line_name: str) -> Path:
    """build/<line>/cluster-test: node root, TFTP tree, server state, logs."""
    return paths.line_dir(line_name) / "cluster-test"


def _select_nodes(cluster: Cluster, names) -> list:
    nodes = list(cluster.nodes_by_ip())
    if names is not None:
        unknown = sorted(set(names) - {n.name for n in nodes})
        if unknown:
            raise UserError(f"cluster {cluster.name} has no node(s) {', '.join(unknown)}")
        nodes = [n for n in nodes if n.name in set(names)]
    if not nodes:
        raise UserError(f"cluster {cluster.name}: no nodes to boot")
    emulated = nic_models()
    no_card = [f"{n.name} ({n.nic})" for n in nodes if n.nic not in emulated]
    if no_card:
        raise UserError(f"QEMU emulates no card for {', '.join(no_card)}: an NFS-root node "
                        f"needs its network before its root; valid cards for the cluster "
                        f"test: {', '.join(sorted(emulated))}")
    return nodes


def validate_kernels(cluster: Cluster, nodes, kernels) -> dict[str, Path]:
    if cluster.line.initrd_format != "cpio":
        raise UserError(f"the NFS-root cluster test boots lines with an initramfs (linux-6.1); "
                        f"line {cluster.line_name} has {cluster.line.initrd_format} initrds")
    missing = sorted({n.variant_name for n in nodes} - set(kernels))
    if missing:
        raise UserError(f"no kernel given for variant(s) {', '.join(missing)} of cluster "
                        f"{cluster.name}: build them with `doit line={cluster.line_name} "
                        f"kernel:<variant>`")
    images = {}
    for variant in {n.variant_name for n in nodes}:
        image = Path(kernels[variant])
        if not image.is_file():
            raise UserError(f"kernel image {image} for variant {variant} does not exist")
        images[variant] = image
    return images


def node_argv(namespace: NetNamespace, cluster: Cluster, node, tap: str) -> list[str]:
    machine = machine_for(cpu=node.cpu, nic=node.nic, mem_mb=node.memory_mb,
                          mac=node.mac, name=f"ltsp-mosix-{cluster.name}-{node.name}")
    # iPXE as QEMU's kernel asks dnsmasq for its address and loader, as the
    # NIC's ROM would, without the ROM's banner wait (lab.boot.machine.FIRMWARES).
    romfile, start = machine.firmware_args(CLUSTER_FIRMWARE, IPXE_DHCP_SCRIPT)
    return namespace.argv([
        machine.qemu_path(), *machine.common_args("pxe"),
        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
        "-device", machine.nic_device(romfile), *start])


def _boot_node(argv, result: NodeResult, logs: Path, timeout: float,
               cancel: threading.Event, state_dir: Path) -> None:
    """Runs in a thread: QEMU from start to marker, in two watches so the
    boot time (to the init on the NFS root) is measured apart from the
    pings and the barrier."""
    log = logs / f"{result.name}.log"
    second = logs / f"{result.name}.log.2"
    result.log_path = log
    transcript = ""
    try:
        with running(argv, cwd=state_dir) as (child, started_at):
            boot = watch_stream(child, timeout=timeout, log_path=log, marker=INIT_IP_PREFIX,
                                started_at=started_at, drain_seconds=0, cancel=cancel)
            transcript = boot.transcript
            result.verdict, result.kind, result.console_line = boot.verdict, boot.kind, boot.line
            result.seconds = boot.seconds
            if boot.verdict != PASS:
                return
            result.boot_seconds = boot.seconds
            rest = watch_stream(child, timeout=timeout, log_path=second, started_at=started_at,
                                cancel=cancel)
            transcript += rest.transcript
            result.verdict, result.kind, result.console_line = rest.verdict, rest.kind, rest.line
            result.seconds = rest.seconds
    except Exception as error:     # reported as the node's failure, never lost in a thread
        result.verdict, result.kind, result.console_line = FAIL, "runner-error", str(error)
    finally:
        _combine_logs(log, second)
        result.report = parse_init_report(transcript)
        if result.verdict != PASS:
            cancel.set()           # one node down: the others would wait for it in vain


def _judge(result: NodeResult, node, peers: list[str], root: Path, expected_kernel: str,
           source: str) -> None:
    report = result.report
    if result.verdict != PASS:
        result.problems.append(f"{result.verdict} {result.kind}: {result.console_line}")
        return
    if report.ip != str(node.ip):
        result.problems.append(f"reported ip {report.ip}, the cluster file says {node.ip}")
    if report.host != node.name:
        result.problems.append(f"reported host name {report.host}, expected {node.name}")
    if report.loaded_kernel != expected_kernel:
        result.problems.append(f"pxelinux loaded {report.loaded_kernel}, not this node's "
                               f"{expected_kernel} (pxelinux.cfg/01-<mac>)")
    result.problems += _root_problems(report, source)
    result.booted, problems = _server_side(root, report.host, report)
    result.problems += problems
    done_path = done_file(root, node.ip)
    result.done, complete = parse_done(done_path.read_text()) if done_path.is_file() else ({}, False)
    if not complete:
        result.problems.append(f"{done_path.name} on the server is incomplete: {result.done}")
    for peer in peers:
        if not report.pings.get(peer):
            result.problems.append(f"no echo reply from {peer} "
                                   f"({'FAILED' if peer in report.pings else 'not pinged'})")
        elif not result.done.get(peer):
            result.problems.append(f"console says {peer} answered, {done_path.name} does not")
    if report.peers != "done":
        result.problems.append(f"barrier: peers {report.peers}")


def run_cluster_test(cluster: Cluster, kernels: dict, state_dir, *, nodes=None,
                     timeout: float = CLUSTER_TIMEOUT, stagger: float = STAGGER_SECONDS,
                     stream=None) -> ClusterResults:
    """Boot the cluster's nodes (or the named ones) from one server in a
    namespace of our own; return one NodeResult per node, in address order.

    kernels maps variant name -> bzImage; every node boots its own variant
    (pxelinux.cfg/01-<mac>).  Progress lines go to stream (stdout)."""
    stream = stream or sys.stdout
    started = time.monotonic()
    selected = _select_nodes(cluster, nodes)
    images = validate_kernels(cluster, selected, kernels)
    cluster = dataclasses.replace(cluster, nodes=tuple(selected))
    state_dir = Path(state_dir).resolve()
    logs = state_dir / "logs"
    for old in logs.glob("*.log*") if logs.is_dir() else ():
        old.unlink()
    logs.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(f"[cluster {cluster.name}] {text}", file=stream, flush=True)

    # Everything on disk first: a mistake shows before any daemon starts.
    peers = [str(node.ip) for node in selected]
    root = make_node_root(state_dir / "root", compile_nfsinit(state_dir / "init"), peers)
    initrd = make_nfsroot_initrd(state_dir / "initrd-nfsroot.cpio")
    boot_images = {variant: BootImages(image, initrd) for variant, image in images.items()}
    tftp = write_tftp_tree(cluster, state_dir / "tftp", boot_images, extra_append=NODE_APPEND)
    kernel_path = {p.mac: p.kernel_path for p in pxe_nodes(cluster, boot_images, NODE_APPEND)}
    conf = write_dnsmasq_conf(cluster, state_dir / "dnsmasq.conf", interface=BRIDGE,
                              tftp_root=tftp)
    for node in selected:
        machine_for(cpu=node.cpu, nic=node.nic, mem_mb=node.memory_mb,
                    mac=node.mac).qemu_path()

    results = [NodeResult(node.name, node.variant_name, node.cpu, node.nic, node.mac, str(node.ip))
               for node in selected]
    cancel = threading.Event()
    threads: list[threading.Thread] = []
    facts: dict = {"state_dir": state_dir}
    site = VirtualSite(cluster, state_dir, root=root, dnsmasq_conf=conf, say=say)
    namespace = site.namespace
    try:
        with site:
            facts["namespace"] = namespace.name
            facts["nfs_ready_seconds"] = site.nfs_ready_seconds
            taps = [site.add_tap() for _ in selected]
            try:
                for index, (node, result, tap) in enumerate(zip(selected, results, taps)):
                    if index and cancel.wait(stagger):
                        break
                    thread = threading.Thread(
                        target=_boot_node, name=f"node-{node.name}",
                        args=(node_argv(namespace, cluster, node, tap), result, logs,
                              timeout, cancel, state_dir))
                    thread.start()
                    threads.append(thread)
                    say(f"{node.name} ({node.variant_name}, {node.cpu}, {node.nic}, {node.mac}) "
                        f"started on {tap}")
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.5)
            except BaseException:
                cancel.set()
                for thread in threads:
                    thread.join()
                raise
    finally:
        facts["namespace_removed"] = bool(site.removed)
    for node, result in zip(selected, results):
        if result.kind == "not-started":
            continue
        _judge(result, node, [p for p in peers if p != str(node.ip)], root,
               kernel_path[node.mac], f"{cluster.server}:{cluster.nfs_root}")
        say(node_line(result))
    if not facts["namespace_removed"]:
        for result in results:
            result.problems.append(f"namespace {namespace.name} still exists after teardown")
    facts["seconds"] = round(time.monotonic() - started, 1)
    outcome = ClusterResults(results, **facts)
    write_results(outcome, state_dir / "results.json")
    say(f"{sum(r.passed for r in outcome)}/{len(outcome)} nodes passed in {outcome.seconds}s; "
        f"namespace {namespace.name} removed: {outcome.namespace_removed}")
    return outcome


def node_line(result: NodeResult) -> str:
    boot = f"{result.boot_seconds:.1f}s" if result.boot_seconds is not None else "-"
    total = f"{result.seconds:.1f}s" if result.seconds is not None else "-"
    pings = " ".join(f"{ip}:{'ok' if ok else 'FAILED'}" for ip, ok in result.pings.items()) or "-"
    verdict = "pass" if result.passed else f"FAIL ({'; '.join(result.problems)})"
    return (f"{result.name} {result.variant} {result.route} ip={result.ip} boot={boot} total={total} "
            f"pings=[{pings}]: {verdict}")


def write_results(results: ClusterResults, path: Path) -> None:
    record = {"namespace": results.namespace, "namespace_removed": results.namespace_removed,
              "nfs_ready_seconds": results.nfs_ready_seconds, "seconds": results.seconds,
              "passed": results.passed,
              "nodes": [dict(jsonable(r), passed=r.passed) for r in results]}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
