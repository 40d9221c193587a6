"""A process migrates between two netbooted x86-64 nodes, with CRIU.

    run_migration(cluster, {variant: bzImage}, state_dir) -> MigrationResult

The cluster's nodes (its [migration] names source, target and optionally a
mismatched node) PXE-boot from one server in a network namespace of our own
(dnsmasq, ganesha: the same pieces as `doit cluster-test`) and mount:
  * <nfs_root>: the node root of Debian packages (initrd/nfsroot_debian.py),
    exported read-only;
  * <nfs_root>-cluster: the cluster's writable export, holding nodes/<host>
    (each node's own folder) and shared/ (every node's /mfs, where the
    checkpoint goes).
The node init (initrd/node/ltsp-mosix-node) runs the shell commands the
server drops in shared/control/<host>/; the server reads their output and
exit status there.  Steps, each timed:
  boot      QEMU start -> the node init's "node ready" (every node)
  check     `criu check` on the source (its output is kept)
  start     the seed's CPU-bound perl loop on the source (count.pl)
  dump      `criu dump` of the running loop into /mfs/ckpt (it stops there)
  transfer  the target reads the images from the server
  restore   `criu restore -d` on the target, which continues the count
  finish    the count completes on the target
and, with a mismatched node, a second computation dumped on the source whose
restore there must fail with CRIU's CPU check.  The result holds the
history of the count: one computation (one pid), counting on from where the
source stopped, finished on the target, gone from the source.

Everything is torn down on success, failure and Ctrl-C (QEMUs, dnsmasq,
ganesha, rpcbind, the namespace)."""
import json
import shutil
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from common import paths
from common.errors import InfraError, UserError
from common.records import jsonable
from initrd.nfsroot_debian import COUNT_SCRIPT, NODE_INIT, make_debian_root
from initrd.nfsroot import make_nfsroot_initrd
from lab.boot.machine import cpu_models
from lab.counts import judge_history, read_history, read_progress
from lab.boot.watcher import PASS, watch_stream
from lab.nodes import node_argv, validate_kernels
from lab.site.virtual import BRIDGE, VirtualSite
from lab.spawn import running
from rootfs.cluster import Cluster
from rootfs.dnsmasq import write_dnsmasq_conf
from rootfs.tftp import BootImages, write_tftp_tree

READY = "ltsp-mosix: node ready"
NEVER = "ltsp-mosix: this line is never printed"
BOOT_TIMEOUT = 240.0
COMMAND_TIMEOUT = 180.0
# The counting loop: TOTAL counts, a record every STEP; the dump comes once
# DUMP_AT counts are done (seconds under TCG, before the loop could finish).
TOTAL = 12_000_000
STEP = 200_000
DUMP_AT = 1_000_000
# The loop's pid on the source: ns_last_pid is set so that it is this one,
# a pid the target's few processes never reach (CRIU restores the pid).  The
# node kernels are tinyconfig-based (BASE_SMALL): pid_max is 4096.
PID = 3000


@dataclass
class MigrationResult:
    cluster: str
    source: str
    target: str
    mismatched: str | None
    steps: dict = field(default_factory=dict)          # step -> seconds
    boot: dict = field(default_factory=dict)           # node -> seconds to "node ready"
    image_bytes: int | None = None
    image_files: int | None = None
    criu_check: str = ""
    history: list = field(default_factory=list)        # [state, count, host, pid]
    dump_count: int | None = None                      # the last count recorded on the source
    mismatch_refusal: str | None = None                # CRIU's words on the mismatched node
    problems: list = field(default_factory=list)
    namespace_removed: bool | None = None
    seconds: float | None = None

    @property
    def passed(self) -> bool:
        return not self.problems and bool(self.namespace_removed)


def default_state_dir(line_name: str) -> Path:
    return paths.line_dir(line_name) / "migrate-test"


def cluster_export_pseudo(cluster: Cluster) -> str:
    return f"{cluster.nfs_root}-cluster"


def node_append(cluster: Cluster) -> str:
    """Besides ip=, root=/dev/nfs and nfsroot= (rootfs.tftp): the console,
    a read-only root, the node init and where the writable export is."""
    return (f"console=ttyS0,115200 panic=1 ro init={NODE_INIT} "
            f"ltsp_mosix.cluster={cluster_export_pseudo(cluster)}")


class NodeVm:
    """A booted node: QEMU in a thread, its console in logs/<name>.log."""

    def __init__(self, argv: list[str], name: str, logs: Path, state_dir: Path):
        self.argv, self.name, self.logs, self.state_dir = argv, name, logs, state_dir
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.boot_seconds: float | None = None
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"node-{name}", daemon=True)

    def _run(self) -> None:
        try:
            with running(self.argv, cwd=self.state_dir) as (child, started_at):
                boot = watch_stream(child, timeout=BOOT_TIMEOUT, log_path=self.logs / f"{self.name}.log",
                                    marker=READY, started_at=started_at, drain_seconds=0, cancel=self.stop)
                if boot.verdict != PASS:
                    self.failure = f"{boot.verdict} {boot.kind}: {boot.line}"
                    return
                self.boot_seconds = boot.seconds
                self.ready.set()
                rest = watch_stream(child, timeout=24 * 3600, log_path=self.logs / f"{self.name}.log.2",
                                    marker=NEVER, started_at=started_at, drain_seconds=0, cancel=self.stop)
                if rest.kind != "interrupted":
                    self.failure = f"after boot: {rest.verdict} {rest.kind}: {rest.line}"
        except Exception as error:      # reported as the node's failure, never lost in a thread
            self.failure = f"runner error: {error}"
        finally:
            self.ready.set()

    def wait_ready(self) -> None:
        while not self.ready.wait(0.5):
            pass
        if self.failure:
            raise InfraError(f"node {self.name} did not come up: {self.failure} "
                             f"(console {self.logs / f'{self.name}.log'})")


class Control:
    """Shell commands for a node through the shared folder."""

    def __init__(self, shared: Path, nodes: dict[str, NodeVm]):
        self.shared, self.nodes, self.count = shared, nodes, 0

    def run(self, host: str, script: str, *, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, float]:
        self.count += 1
        folder = self.shared / "control" / host
        name = f"{self.count:03d}"
        paths.atomic_write_text(folder / f"{name}.cmd", script + "\n")
        started = time.monotonic()
        rc_path = folder / f"{name}.rc"
        while not rc_path.is_file():
            node = self.nodes[host]
            if node.failure:
                raise InfraError(f"node {host} failed while running {script!r}: {node.failure}")
            if time.monotonic() - started > timeout:
                raise InfraError(f"node {host}: no answer to {script!r} in {timeout:.0f} s")
            time.sleep(0.1)
        seconds = round(time.monotonic() - started, 2)
        output = (folder / f"{name}.out").read_text(errors="replace")
        return int(rc_path.read_text().strip() or "255"), output, seconds


def _images(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix == ".img"]
    return sum(p.stat().st_size for p in files), len(files)


def _start_script(work: str, total: int, step: int) -> str:
    # One command a line: the background job is perl itself (no subshell),
    # forked right after the pid counter is set (echo is a shell builtin).
    return (f"mkdir -p {work} && rm -f {work}/progress {work}/history || exit 1\n"
            f"echo {PID - 1} > /proc/sys/kernel/ns_last_pid || exit 1\n"
            f"perl {COUNT_SCRIPT} {work} {total} {step} </dev/null >/dev/null 2>&1 &\n"
            f"echo $!")


def _dump_script(images: str) -> str:
    return (f"rm -rf {images} && mkdir -p {images} && "
            f"criu dump -t {PID} -D {images} -o dump.log -v4 && echo dumped")


def _restore_script(images: str) -> str:
    return f"criu restore -D {images} -d -o restore.log -v4 && echo restored"


def _wait(predicate, what: str, timeout: float, nodes: dict[str, NodeVm]):
    started = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        failed = [f"{n.name}: {n.failure}" for n in nodes.values() if n.failure]
        if failed:
            raise InfraError(f"waiting for {what}: {'; '.join(failed)}")
        if time.monotonic() - started > timeout:
            raise InfraError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def run_migration(cluster: Cluster, kernels: dict, state_dir, *, total: int = TOTAL, step: int = STEP,
                  dump_at: int = DUMP_AT, stream=None) -> MigrationResult:
    stream = stream or sys.stdout
    started = time.monotonic()
    if cluster.migration is None:
        raise UserError(f"{cluster.source}: no [migration] table (source, target): nothing to migrate")
    plan = cluster.migration
    chosen = [plan.source, plan.target] + ([plan.mismatched] if plan.mismatched else [])
    result = MigrationResult(cluster.name, plan.source, plan.target, plan.mismatched)
    kernels = validate_kernels(cluster, [cluster.node(n) for n in chosen], kernels)
    state_dir = Path(state_dir).resolve()
    logs = state_dir / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)

    def say(text: str) -> None:
        print(f"[migrate {cluster.name}] {text}", file=stream, flush=True)

    # Everything on disk first: the root, the writable export, TFTP, dnsmasq.
    root = make_debian_root(state_dir / "export" / "root")
    say(f"node root {paths.shown(root.path)}: {root.files} files, {root.bytes >> 20} MB from "
        f"{len(root.packages)} Debian packages (criu {root.packages.get('criu')}, "
        f"perl-base {root.packages.get('perl-base')}), digest {root.digest[:16]}")
    writable, shared = _writable_export(state_dir / "export" / "cluster", chosen)
    initrd = make_nfsroot_initrd(state_dir / "initrd-nfsroot.cpio")
    images = {variant: BootImages(kernel, initrd) for variant, kernel in kernels.items()}
    nodes_cluster = _only(cluster, chosen)
    tftp = write_tftp_tree(nodes_cluster, state_dir / "tftp", images, extra_append=node_append(cluster))
    conf = write_dnsmasq_conf(nodes_cluster, state_dir / "dnsmasq.conf", interface=BRIDGE, tftp_root=tftp)

    nodes: dict[str, NodeVm] = {}
    site = VirtualSite(cluster, state_dir, root=root.path, dnsmasq_conf=conf, say=say, access="RO",
                       extra_exports=[(writable, cluster_export_pseudo(cluster), "RW")])
    try:
        with site, ExitStack() as stack:
            stack.callback(_stop_nodes, nodes)
            _boot_nodes(site, cluster, chosen, nodes, result, logs, state_dir, say)
            _migrate(result, Control(shared, nodes), shared, nodes, total, step, dump_at, say)
    except (InfraError, UserError) as error:
        result.problems.append(str(error))
    finally:
        result.namespace_removed = bool(site.removed)
    result.seconds = round(time.monotonic() - started, 1)
    paths.atomic_write_text(state_dir / "results.json", json.dumps(jsonable(result), indent=2) + "\n")
    say(f"{'passed' if result.passed else 'FAILED: ' + '; '.join(result.problems)} in {result.seconds} s; "
        f"namespace removed: {result.namespace_removed}")
    return result


def _writable_export(writable: Path, chosen: list[str]) -> tuple[Path, Path]:
    """The nodes' writable export: a folder per node, and the shared folder
    (control files per node, the computation's work folder); (export, shared)."""
    shutil.rmtree(writable, ignore_errors=True)
    shared = writable / "shared"
    for name in chosen:
        (writable / "nodes" / name).mkdir(parents=True)
        (shared / "control" / name).mkdir(parents=True)
    (shared / "work").mkdir()
    return writable, shared


def _boot_nodes(site: VirtualSite, cluster: Cluster, chosen: list[str], nodes: dict, result,
                logs: Path, state_dir: Path, say) -> None:
    """Start a QEMU per chosen node on a tap of the site, then wait until
    each runs its init from the NFS root."""
    for name in chosen:
        node = cluster.node(name)
        tap = site.add_tap()
        nodes[name] = NodeVm(node_argv(site.namespace, cluster, node, tap), name, logs, state_dir)
        nodes[name].thread.start()
        say(f"{name} ({node.variant_name} kernel, QEMU -cpu {cpu_models()[node.cpu].qemu_cpu}) "
            f"started on {tap}")
    for name in chosen:
        nodes[name].wait_ready()
        result.boot[name] = nodes[name].boot_seconds
        say(f"{name} ready in {nodes[name].boot_seconds:.1f} s (PXE, NFS root, node init)")
    result.steps["boot"] = max(result.boot.values())


def _only(cluster: Cluster, names: list[str]) -> Cluster:
    return replace(cluster, nodes=tuple(n for n in cluster.nodes if n.name in names))


def _stop_nodes(nodes: dict[str, NodeVm]) -> None:
    for node in nodes.values():
        node.stop.set()
    for node in nodes.values():
        node.thread.join(30)


def _migrate(result: MigrationResult, control: Control, shared: Path, nodes: dict, total: int, step: int,
             dump_at: int, say) -> None:
    source, target = result.source, result.target
    rc, output, seconds = control.run(source, "criu check; echo '--- criu check --all'; criu check --all; exit 0",
                                      timeout=COMMAND_TIMEOUT)
    result.criu_check = output.strip()
    result.steps["check"] = seconds
    say(f"criu check on {source}: {output.strip().splitlines()[0] if output.strip() else '(no output)'}")
    if "Looks good" not in output.split("--- criu check --all")[0]:
        raise InfraError(f"criu check failed on {source} (rc {rc}):\n{output.strip()[-2000:]}")

    rc, output, seconds = control.run(source, _start_script("/mfs/work", total, step))
    result.steps["start"] = seconds
    if rc != 0 or output.strip() != str(PID):
        raise InfraError(f"starting count.pl on {source}: rc {rc}, pid {output.strip()!r} (expected {PID})")
    say(f"count.pl (pid {PID}) counting to {total} on {source}")
    _wait(lambda: (p := read_progress(shared)) and p[1] >= dump_at and p, f"{source} counting to {dump_at}",
          COMMAND_TIMEOUT, nodes)

    rc, output, seconds = control.run(source, _dump_script("/mfs/ckpt"))
    result.steps["dump"] = seconds
    if rc != 0:
        raise InfraError(f"criu dump on {source} failed (rc {rc}):\n{output.strip()[-2000:]}\n"
                         f"(log: {shared / 'ckpt' / 'dump.log'})")
    result.image_bytes, result.image_files = _images(shared / "ckpt")
    stopped = read_progress(shared)
    say(f"dumped on {source} in {seconds:.2f} s at count {stopped[1] if stopped else '?'}: "
        f"{result.image_files} images, {result.image_bytes} bytes")
    rc, output, _ = control.run(source, f"test -d /proc/{PID} && echo running || echo gone")
    if output.strip() != "gone":
        result.problems.append(f"pid {PID} still runs on {source} after the dump")
    time.sleep(1.0)
    if read_progress(shared) != stopped:
        result.problems.append(f"the count went on after the dump on {source}")

    rc, output, seconds = control.run(target, "cat /mfs/ckpt/*.img > /dev/null && echo read")
    result.steps["transfer"] = seconds
    rc, output, seconds = control.run(target, _restore_script("/mfs/ckpt"))
    result.steps["restore"] = seconds
    if rc != 0:
        raise InfraError(f"criu restore on {target} failed (rc {rc}):\n{output.strip()[-2000:]}\n"
                         f"(log: {shared / 'ckpt' / 'restore.log'})")
    say(f"restored on {target} in {seconds:.2f} s (images read in {result.steps['transfer']:.2f} s)")
    finished = time.monotonic()
    _wait(lambda: (p := read_progress(shared)) and p[0] == "done" and p, f"the count finishing on {target}",
          COMMAND_TIMEOUT * 2, nodes)
    result.steps["finish"] = round(time.monotonic() - finished, 2)
    result.history = read_history(shared)
    result.dump_count, problems = judge_history(result.history, source, target, total)
    result.problems += problems
    rc, output, _ = control.run(source, f"test -d /proc/{PID} && echo running || echo gone")
    if output.strip() != "gone":
        result.problems.append(f"pid {PID} runs on {source} again")
    say(f"count finished on {target}: {result.history[-1] if result.history else '-'}; continued from "
        f"{result.dump_count} (source) - {len(result.history)} records, one pid")
    if result.mismatched:
        _refused_on_mismatch(result, control, shared, nodes, say)


def _refused_on_mismatch(result: MigrationResult, control: Control, shared: Path, nodes: dict, say) -> None:
    """A second computation dumped on the source: its restore on the
    mismatched node must fail, in CRIU's CPU check."""
    source, other = result.source, result.mismatched
    rc, output, _ = control.run(source, _start_script("/mfs/work", 10 * TOTAL, STEP))
    if rc != 0 or output.strip() != str(PID):
        raise InfraError(f"second count.pl on {source}: rc {rc}, pid {output.strip()!r}")
    _wait(lambda: (p := read_progress(shared)) and p[1] >= STEP and p, f"{source} counting again",
          COMMAND_TIMEOUT, nodes)
    rc, output, _ = control.run(source, _dump_script("/mfs/ckpt2"))
    if rc != 0:
        raise InfraError(f"second criu dump on {source} failed (rc {rc}):\n{output.strip()[-2000:]}")
    # CRIU's own words: its errors in the restore log (without the two
    # "exited, status=1" of helper programs every criu run here logs).
    rc, output, _ = control.run(other, _restore_script("/mfs/ckpt2") + "\n"
                                "grep -E 'Error|FAILED' /mfs/ckpt2/restore.log | grep -v 'util.c:642'")
    result.mismatch_refusal = output.strip()
    if "restored" in output:
        result.problems.append(f"criu restored on {other} although its CPU lacks features of {source}")
        return
    first = next((line for line in output.splitlines() if "Error" in line), output.strip())
    say(f"restore on {other} refused, as it must be: {first.strip()}")

