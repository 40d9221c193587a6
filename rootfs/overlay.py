"""The node root overlay: what the ltsp_*_core package carries, plus the
server snippets, built into one directory:

    <out>/opt/ltsp/i386/etc/hpc.map          (mosix.map for mosix-1.7.0)
    <out>/opt/ltsp/i386/etc/lts.conf
    <out>/opt/ltsp/i386/etc/rc.d/mosix       the rc script (RCFILE_01 = mosix)
    <out>/opt/ltsp/i386/mfs/                 MFS mount point (the NFS root is read-only)
    <out>/server/...                         snippets for the server (rootfs/server.py)

The tree is built in a temporary directory beside <out> and renamed into
place: a package never picks up half an overlay or a stale file from an
earlier cluster.  Contents are deterministic (sorted, no timestamps)."""
from pathlib import Path

from common.paths import atomic_tree
from rootfs.cluster import Cluster, load_cluster
from rootfs.layout import site_layout
from rootfs.ltsconf import render_lts_conf
from rootfs.maps import map_file_name, render_map
from rootfs.rcscript import MFS_DIR, RC_PATH_IN_NODE_ROOT, render_rc_script
from rootfs.server import server_files

SERVER_DIR = "server"


def node_root_prefix() -> str:
    """Where the node root lives on an LTSP server (configs/site.toml)."""
    return site_layout().overlay


def node_root_files(cluster: Cluster) -> dict[str, tuple[str, int]]:
    """Path inside the node root -> (text, mode)."""
    return {
        f"etc/{map_file_name(cluster.line_name)}": (render_map(cluster), 0o644),
        "etc/lts.conf": (render_lts_conf(cluster), 0o644),
        RC_PATH_IN_NODE_ROOT: (render_rc_script(cluster), 0o755),
    }


def write_overlay(cluster: Cluster, out_dir: Path) -> Path:
    """Build the overlay at out_dir (replacing what was there); returns out_dir."""
    out_dir = Path(out_dir)
    with atomic_tree(out_dir) as work:
        node_root = work / node_root_prefix()
        _write_files(node_root, node_root_files(cluster))
        (node_root / MFS_DIR.strip("/")).mkdir(parents=True)
        _write_files(work / SERVER_DIR, server_files(cluster))
    return out_dir


def build_for_release(line, out_dir: Path, cluster_path: Path | None = None) -> Path:
    """The overlay of configs/cluster.toml for this line; returns the node
    root (out_dir/opt/ltsp/i386), which the release packages under the
    same prefix.  A line other than the cluster's own gets the same nodes
    with that line's map file name and kernels."""
    cluster = load_cluster(cluster_path)
    if cluster.line_name != line.name:
        cluster = cluster.for_line(line.name)
    return write_overlay(cluster, out_dir) / node_root_prefix()


def _write_files(root: Path, files: dict[str, tuple[str, int]]) -> None:
    for relative, (text, mode) in sorted(files.items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
