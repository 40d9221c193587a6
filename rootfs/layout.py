"""Where a site's files go on an LTSP server (configs/site.toml [layout]):
the TFTP root holding lts/<line>/ kernels and initrds, the node root, and
the server snippets.  The release's Debian packages install by the
[layouts.*] tables [packages] names: one per kind of server."""
import re
from dataclasses import dataclass
from pathlib import Path

from common.data import optional, read_toml, require
from common.errors import UserError
from common.paths import configs_dir


@dataclass(frozen=True)
class SiteLayout:
    tftp_root: str          # holds lts/<line>/... (rootfs.pxetree.lts_path)
    overlay: str            # the node root
    server_snippets: str


def site_layout(path: Path | None = None) -> SiteLayout:
    path = path or configs_dir() / "site.toml"
    layout = require(read_toml(path), "layout", dict, path)
    fields = {name: require(layout, name, str, path, where="layout").strip("/")
              for name in ("tftp_root", "overlay", "server_snippets")}
    for name, value in fields.items():
        if not _PATH.fullmatch(value) or ".." in value.split("/") or "{" in value:
            raise UserError(f"{path}: layout.{name} = {value!r}: a relative path of letters, digits and '._+-/'")
    return SiteLayout(**fields)


# -- Debian packages: where a release's packages install on a server ------------------

LAYOUT_PATHS = ("kernel", "initrd", "system_map", "config", "node_root", "server_snippets")
# What may reach a package's file list, a control file, Release or a shell
# script from configs/site.toml: checked where it is read.
_PATH = re.compile(r"[A-Za-z0-9._+/{}-]+")
_MAINTAINER = re.compile(r"[^<>\n\r]+ <[^<>\s@]+@[^<>\s]+>")
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*")
_TAG = re.compile(r"[a-z0-9][a-z0-9-]*")


def _one_line(value: str, path: Path, label: str) -> str:
    if not value or not value.isprintable() or len(value) > 200:
        raise UserError(f"{path}: field {label!r} must be one printable line of at most 200 characters")
    return value
PLACEHOLDERS = ("line", "variant", "image", "script")


@dataclass(frozen=True)
class PackageLayout:
    """One [layouts.<name>] table: a suite of the release's apt repository."""
    name: str
    description: str
    kernel: str
    initrd: str
    system_map: str
    config: str
    node_root: str
    server_snippets: str
    ipxe_dropin: str | None = None       # LTSP 23: `ltsp ipxe` drop-in adding the kernel's menu entry
    exclusive: str | None = None         # virtual package the core packages provide and conflict with
    lintian_overrides: tuple[tuple[str, str], ...] = ()

    def path(self, field: str, **values: str) -> str:
        return getattr(self, field).format(**values)


@dataclass(frozen=True)
class PackageSettings:
    layouts: tuple[PackageLayout, ...]
    maintainer: str
    architectures: tuple[str, ...]
    component: str


def package_settings(path: Path | None = None) -> PackageSettings:
    """[packages] and the [layouts.*] it names, from configs/site.toml; a
    missing or mistyped field is an error naming it."""
    path = path or configs_dir() / "site.toml"
    data = read_toml(path)
    packages = require(data, "packages", dict, path)
    tables = require(data, "layouts", dict, path)
    names = require(packages, "layouts", list, path, where="packages")
    if not names:
        raise UserError(f"{path}: packages.layouts is empty: a release needs at least one layout")
    layouts = []
    for name in names:
        if name not in tables:
            raise UserError(f"{path}: packages.layouts names {name!r}, which has no [layouts.{name}] table "
                            f"(tables: {', '.join(sorted(tables)) or 'none'})")
        layouts.append(_package_layout(name, tables[name], path))
    architectures = require(packages, "architectures", list, path, where="packages")
    if not architectures or not all(isinstance(a, str) and a.isalnum() for a in architectures):
        raise UserError(f"{path}: packages.architectures must list Debian architectures, not {architectures!r}")
    maintainer = require(packages, "maintainer", str, path, where="packages")
    if not _MAINTAINER.fullmatch(maintainer):
        raise UserError(f"{path}: field 'packages.maintainer' = {maintainer!r} must read 'Name <address>'")
    component = require(packages, "component", str, path, where="packages")
    if not _TAG.fullmatch(component):
        raise UserError(f"{path}: field 'packages.component' = {component!r}: lower-case letters, digits, '-'")
    return PackageSettings(layouts=tuple(layouts), maintainer=maintainer, architectures=tuple(architectures),
                           component=component)


def _package_layout(name: str, table, path: Path) -> PackageLayout:
    where = f"layouts.{name}"
    if not isinstance(table, dict):
        raise UserError(f"{path}: [{where}] must be a table")
    if not name.isalnum() or not name.islower():
        raise UserError(f"{path}: layout name {name!r} must be lower-case letters and digits (it names an apt suite)")
    fields = {field: require(table, field, str, path, where=where).strip("/") for field in LAYOUT_PATHS}
    dropin = optional(table, "ipxe_dropin", str, path, where=where)
    for field, value in {**fields, "ipxe_dropin": dropin or ""}.items():
        try:
            value.format(**{p: "x" for p in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as error:
            raise UserError(f"{path}: {where}.{field} = {value!r}: unknown placeholder {error} "
                            f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})") from None
        if ".." in value.split("/"):
            raise UserError(f"{path}: {where}.{field} = {value!r} leaves the server's root")
        if value and not _PATH.fullmatch(value):
            raise UserError(f"{path}: {where}.{field} = {value!r}: a path of letters, digits and "
                            f"'._+-/' and placeholders only")
    overrides = optional(table, "lintian_overrides", list, path, [], where=where)
    if not all(isinstance(o, list) and len(o) == 2 and all(isinstance(x, str) and x for x in o)
               for o in overrides):
        raise UserError(f"{path}: {where}.lintian_overrides must list [tag, reason] pairs")
    if not all(_TAG.fullmatch(tag) and reason.isprintable() for tag, reason in overrides):
        raise UserError(f"{path}: {where}.lintian_overrides: a tag is lower-case letters, digits and '-', "
                        f"a reason one printable line")
    exclusive = optional(table, "exclusive", str, path, where=where)
    if exclusive is not None and not _NAME.fullmatch(exclusive):
        raise UserError(f"{path}: {where}.exclusive = {exclusive!r} is not a Debian package name")
    description = _one_line(require(table, "description", str, path, where=where), path, f"{where}.description")
    return PackageLayout(name=name, description=description,
                         ipxe_dropin=dropin.strip("/") if dropin else None, exclusive=exclusive,
                         lintian_overrides=tuple(tuple(o) for o in overrides), **fields)
