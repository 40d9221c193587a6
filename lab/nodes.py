"""What an NFS-root node is to the lab, whether it boots alone
(lab/nfsboot.py), with its cluster (lab/cluster.py) or for a migration
(lab/migrate.py): its kernel command line and QEMU command, the report its
init (initrd/nfsinit.c) prints on the console, and the server-side check
of the file it wrote into its export."""
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from initrd.nfsroot import booted_file, parse_booted
from lab.boot.facts import parse_boot_facts
from lab.boot.machine import IPXE_DHCP_SCRIPT, machine_for
from lab.boot.watcher import clean_line
from lab.site.netns import NetNamespace
from rootfs.cluster import Cluster

# Kernel command line besides ip=/root=/nfsroot= (rootfs.tftp.node_append
# adds those): serial console, a panic ends QEMU, the init on the NFS root.
NODE_APPEND = "console=ttyS0,115200 panic=1 rw init=/sbin/init"
# The cluster's nodes fetch pxelinux.0 with iPXE started as QEMU's kernel
# (no ROM banner or ProxyDHCP wait); the boot test keeps a ROM boot per variant.
CLUSTER_FIRMWARE = "ipxe"
# The init prints this once it runs from the NFS root and knows its address:
# the end of the "boot" (phase 1) of a cluster node.
INIT_IP_PREFIX = "ltsp-mosix: ip "

_IP = re.compile(r"^ltsp-mosix: ip (\S+)(?: dev (\S+))?")
_HOST = re.compile(r"^ltsp-mosix: host (\S+)")
_ROOT = re.compile(r"^ltsp-mosix: root (.+)")
_PING = re.compile(r"^ltsp-mosix: ping (\S+) (ok|FAILED)")
_PEERS = re.compile(r"^ltsp-mosix: peers (.+)")
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


def combine_logs(first: Path, second: Path) -> None:
    """Phase 2's log appended to phase 1's: one console log per node."""
    if second.is_file():
        with open(first, "a", encoding="utf-8") as out:
            out.write(second.read_text(encoding="utf-8", errors="replace"))
        second.unlink()


def server_side(root: Path, host: str | None, report: InitReport) -> tuple[dict | None, list[str]]:
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

def root_problems(report: InitReport, source: str) -> list[str]:
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


