"""The cluster run: the nodes of a cluster file boot together from one
server, each its own kernel variant, their roots on NFS, and ping each
other: run_cluster_test(cluster, {variant: bzImage}, state_dir) ->
ClusterResults.  A node passes when its console reaches the marker AND the
server side agrees (the file it wrote, every peer answered its pings).

The server is the virtual site (lab/site/virtual.py: a namespace with the
server's bridge, NFS and dnsmasq on the config rootfs.dnsmasq generates,
TFTP from the tree rootfs.tftp.write_tftp_tree writes: pxelinux.cfg/01-<mac>
per node); one QEMU per node on a tap of its own, started one after
another and running together; the QEMUs are killed and reaped by
lab.spawn.running, also when a watch is cancelled, before the site comes
down."""
import dataclasses
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import paths
from common.errors import UserError
from common.paths import atomic_write_text
from common.records import jsonable
from initrd.nfsroot import compile_nfsinit, done_file, make_nfsroot_initrd, make_node_root, parse_done
from lab.boot.machine import machine_for, nic_models
from lab.boot.watcher import FAIL, PASS, watch_stream
from lab.nodes import (CLUSTER_FIRMWARE, INIT_IP_PREFIX, NODE_APPEND, InitReport, combine_logs, node_argv, parse_init_report, root_problems,
                       server_side, validate_kernels)
from lab.site.virtual import BRIDGE, VirtualSite
from lab.spawn import running
from rootfs.cluster import Cluster
from rootfs.dnsmasq import write_dnsmasq_conf
from rootfs.tftp import BootImages, pxe_nodes, write_tftp_tree

CLUSTER_TIMEOUT = 300.0      # per node, QEMU start -> marker (PXE ~25 s + pings + barrier)
STAGGER_SECONDS = 3.0        # between QEMU starts: iPXE start-up is the CPU-heavy part


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
        combine_logs(log, second)
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
    result.problems += root_problems(report, source)
    result.booted, problems = server_side(root, report.host, report)
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


def _site_files(cluster: Cluster, selected, images: dict, peers: list[str], state_dir: Path):
    """Everything on disk first, so a mistake shows before any daemon
    starts: the node root, the NFS-root initrd, the TFTP tree and dnsmasq's
    config; and every node's QEMU is there.  Returns (root, dnsmasq.conf,
    MAC -> the kernel path pxelinux must load)."""
    root = make_node_root(state_dir / "root", compile_nfsinit(state_dir / "init"), peers)
    initrd = make_nfsroot_initrd(state_dir / "initrd-nfsroot.cpio")
    boot_images = {variant: BootImages(image, initrd) for variant, image in images.items()}
    tftp = write_tftp_tree(cluster, state_dir / "tftp", boot_images, extra_append=NODE_APPEND)
    kernel_path = {p.mac: p.kernel_path for p in pxe_nodes(cluster, boot_images, NODE_APPEND)}
    conf = write_dnsmasq_conf(cluster, state_dir / "dnsmasq.conf", interface=BRIDGE, tftp_root=tftp)
    for node in selected:
        machine_for(cpu=node.cpu, nic=node.nic, mem_mb=node.memory_mb, mac=node.mac).qemu_path()
    return root, conf, kernel_path


def _boot_together(site: VirtualSite, cluster: Cluster, selected, results, logs: Path, timeout: float,
                   stagger: float, state_dir: Path, say) -> None:
    """One QEMU per node on a tap of its own, started `stagger` seconds
    apart, all watched in threads until they end; one node down cancels
    the others (they would wait for it in vain)."""
    cancel = threading.Event()
    threads: list[threading.Thread] = []
    taps = [site.add_tap() for _ in selected]
    try:
        for index, (node, result, tap) in enumerate(zip(selected, results, taps)):
            if index and cancel.wait(stagger):
                break
            thread = threading.Thread(
                target=_boot_node, name=f"node-{node.name}",
                args=(node_argv(site.namespace, cluster, node, tap), result, logs, timeout, cancel, state_dir))
            thread.start()
            threads.append(thread)
            say(f"{node.name} ({node.variant_name}, {node.cpu}, {node.nic}, {node.mac}) started on {tap}")
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except BaseException:
        cancel.set()
        for thread in threads:
            thread.join()
        raise


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

    peers = [str(node.ip) for node in selected]
    root, conf, kernel_path = _site_files(cluster, selected, images, peers, state_dir)
    results = [NodeResult(node.name, node.variant_name, node.cpu, node.nic, node.mac, str(node.ip))
               for node in selected]
    facts: dict = {"state_dir": state_dir}
    site = VirtualSite(cluster, state_dir, root=root, dnsmasq_conf=conf, say=say)
    namespace = site.namespace
    try:
        with site:
            facts["namespace"] = namespace.name
            facts["nfs_ready_seconds"] = site.nfs_ready_seconds
            _boot_together(site, cluster, selected, results, logs, timeout, stagger, state_dir, say)
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
