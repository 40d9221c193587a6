"""The cluster's TFTP tree: one pxelinux.cfg/01-<mac> per node booting its
own kernel variant from an NFS root.  The tree itself (layout, copies,
atomic rename) is qemu.pxe.make_tftp_tree's; this module only says which
kernel each node gets and with which command line.

NFS root options per kernel (both NFSv3, which nfs-ganesha serves; it
has no NFSv2, the 2.4 default):
- 2.4 (fs/nfs/nfsroot.c): flag options `v3` and `udp`/`tcp`; UDP is the
  2.4 default and its TCP client was still young, so `v3,udp`.
- 6.1: mount options `vers=3,tcp` (6.1 defaults to NFS_DISABLE_UDP_SUPPORT).
`ip=dhcp` (2.4: CONFIG_IP_PNP_DHCP) takes address and host name from dnsmasq."""
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping

from kernels import build
from kernels.errors import UserError
from qemu.pxe import PxeNode, make_tftp_tree
from rootfs.cluster import Cluster

NFS_OPTIONS_24 = "v3,udp"
NFS_OPTIONS_MODERN = "vers=3,tcp"


@dataclass(frozen=True)
class BootImages:
    kernel: Path
    initrd: Path


def nfs_options(kernel_version: str) -> str:
    return NFS_OPTIONS_24 if kernel_version.startswith("2.4.") else NFS_OPTIONS_MODERN


def node_append(cluster: Cluster, extra: str = "") -> str:
    """Kernel command line (without initrd=) of every node of the cluster."""
    nfsroot = f"{cluster.server}:{cluster.nfs_root},{nfs_options(cluster.line.kernel)}"
    return " ".join(filter(None, ["ip=dhcp", "root=/dev/nfs", f"nfsroot={nfsroot}", extra.strip()]))


def pxe_nodes(cluster: Cluster, images: Mapping[str, BootImages], extra_append: str = "") -> list[PxeNode]:
    """A PxeNode per node; images maps variant name -> its kernel and initrd."""
    missing = {n.variant_name: n.name for n in cluster.nodes if n.variant_name not in images}
    if missing:
        wanted = "; ".join(f"variant {v} (for {missing[v]})" for v in sorted(missing))
        raise UserError(f"TFTP tree of cluster {cluster.name}: no kernel for {wanted}: "
                        f"build it with `doit line={cluster.line_name} kernel:<variant>`")
    append = node_append(cluster, extra_append)
    return [PxeNode(mac=node.mac, kernel=Path(images[node.variant_name].kernel),
                    initrd=Path(images[node.variant_name].initrd), append=append,
                    line=cluster.line_name, variant=node.variant_name)
            for node in cluster.nodes_by_ip()]


def write_tftp_tree(cluster: Cluster, root: Path, images: Mapping[str, BootImages],
                    extra_append: str = "") -> Path:
    """Build the TFTP root at root.  pxelinux.cfg/default refuses to boot:
    a PC the cluster file does not know must not boot some node's kernel."""
    return make_tftp_tree(Path(root), pxe_nodes(cluster, images, extra_append), default=None)


def built_images(cluster: Cluster, initrd: Path) -> dict[str, BootImages]:
    """The project's own builds: build/<line>/variants/<variant>/out/bzImage
    for every variant the nodes boot, all with the line's node initrd."""
    return {variant.name: BootImages(build.out_dir(cluster.line, variant) / "bzImage", Path(initrd))
            for variant in {node.variant for node in cluster.nodes}}
