"""The cluster's TFTP tree: one pxelinux.cfg/01-<mac> per node booting its
own kernel variant from an NFS root.  The tree itself (layout, copies,
atomic rename) is rootfs.pxetree.make_tftp_tree's; this module only says which
kernel each node gets and with which command line.

The NFS root options are the line's (`nfs_options` in configs/lines/,
which says why each line has its own).  `ip=dhcp` (2.4:
CONFIG_IP_PNP_DHCP) takes address and host name from dnsmasq."""
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from kernels import build
from rootfs.cluster import Cluster
from rootfs.pxetree import PxeNode, make_tftp_tree


@dataclass(frozen=True)
class BootImages:
    kernel: Path
    initrd: Path


def node_append(cluster: Cluster, extra: str = "") -> str:
    """Kernel command line (without initrd=) of every node of the cluster."""
    nfsroot = f"{cluster.server}:{cluster.nfs_root},{cluster.line.nfs_options}"
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


def built_kernels(cluster: Cluster) -> dict[str, Path]:
    """variant name -> the project's own build of it
    (build/<line>/variants/<variant>/out/bzImage), for every variant the
    nodes boot, whether or not it is built yet."""
    return {node.variant_name: build.out_dir(cluster.line, node.variant) / "bzImage"
            for node in cluster.nodes}


def built_images(cluster: Cluster, initrd: Path) -> dict[str, BootImages]:
    """built_kernels(), each with the line's node initrd."""
    return {name: BootImages(kernel, Path(initrd)) for name, kernel in built_kernels(cluster).items()}
