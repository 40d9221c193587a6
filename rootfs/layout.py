"""Where a site's files go on an LTSP server (configs/site.toml [layout]):
the TFTP root holding lts/<line>/ kernels and initrds, the node root, and
the server snippets.  The release packages use the same layout."""
from dataclasses import dataclass

from common.data import read_toml, require
from common.paths import configs_dir


@dataclass(frozen=True)
class SiteLayout:
    tftp_root: str          # holds lts/<line>/... (rootfs.pxetree.lts_path)
    overlay: str            # the node root
    server_snippets: str


def site_layout() -> SiteLayout:
    path = configs_dir() / "site.toml"
    layout = require(read_toml(path), "layout", dict, path)
    fields = {name: require(layout, name, str, path, where="layout").strip("/")
              for name in ("tftp_root", "overlay", "server_snippets")}
    return SiteLayout(**fields)
