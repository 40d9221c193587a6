"""The node rc script that starts and stops process migration, rendered
from templates/mosix.sh.in (POSIX sh: the node's shell is BusyBox ash or
dash, never bash).

It lives at /etc/rc.d/<RC_NAME> in the node root, where LTSP 3's rc.local
runs the scripts lts.conf names in RCFILE_01..10; the same script serves
the server as /etc/init.d/<RC_NAME>.  Placeholders are @NAME@ (never $,
which is the shell's), and a leftover one is an error, not a broken script."""
import re
from pathlib import Path

from common.errors import UserError
from common.paths import atomic_write_text
from rootfs.cluster import Cluster
from rootfs.maps import map_path_on_node

RC_NAME = "mosix"                       # RCFILE_01 = mosix in lts.conf
RC_PATH_IN_NODE_ROOT = f"etc/rc.d/{RC_NAME}"
MFS_DIR = "/mfs"
# DFSA on for every node and the server: mixed DFSA settings make nodes
# refuse each other (the kernel side is CONFIG_MOSIX_DFSA=y everywhere).
MFS_OPTIONS = "dfsa=1"

TEMPLATE = Path(__file__).resolve().parent / "templates" / "mosix.sh.in"
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def render_rc_script(cluster: Cluster, template: Path = TEMPLATE) -> str:
    values = {
        "RC_NAME": RC_NAME,
        "CLUSTER": cluster.name,
        "LINE": cluster.line_name,
        "MAP": map_path_on_node(cluster.line_name),
        "MFS_DIR": MFS_DIR,
        "MFS_OPTIONS": MFS_OPTIONS,
    }
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    leftover = sorted(set(_PLACEHOLDER.findall(text)))
    if leftover:
        raise UserError(f"{template}: unknown placeholder(s) {', '.join(leftover)} "
                        f"(known: {', '.join('@' + n + '@' for n in values)})")
    return text


def write_rc_script(cluster: Cluster, path: Path) -> Path:
    """Write the script (mode 0755) to a temporary name, then rename it:
    rc.local never finds half a script or one it may not run."""
    return atomic_write_text(Path(path), render_rc_script(cluster), mode=0o755)
