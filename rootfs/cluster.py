"""The cluster as data: configs/cluster.toml, validated on load.

    [cluster]
    name = "lab67"
    line = "openmosix-2"            # a configs/lines/ name
    subnet = "192.168.67.0/24"
    server = "192.168.67.1"         # DHCP, TFTP, NFS server; a cluster node too
    nfs_root = "/opt/ltsp/i386"     # the nodes' root, exported over NFSv3
    screen = "startx"               # optional: default SCREEN_01 ("startx" or "shell")

    [[nodes]]
    name = "node01"
    mac = "00:60:08:67:00:10"
    ip = "192.168.67.10"
    cpu = "pentium"                 # a configs/cpu/ name
    nic = "3c590"                   # the card the node really has
    nic_profile = "3c590"           # optional: configs/nic/ profile of its kernel
    memory_mb = 64
    screen = "shell"                # optional: overrides [cluster] screen

    [migration]                     # optional: `doit migrate-test` (x86-64 lines)
    source = "node01"               # runs the computation, checkpointed there
    target = "node02"               # restores it: must offer every CPU feature of source
    mismatched = "node03"           # optional: a node lacking some, where a restore
                                    # must be refused (CRIU's CPU check)

Every error names the node and the field at fault.  The node checks are
all made before anything is reported, so one run lists every mistake.  A
migration between nodes whose CPU variants offer different features
(configs/cpu/<cpu>.toml `features`) is refused before anything boots,
naming the nodes and the features."""
import ipaddress
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from common.errors import UserError
from common.mac import normalise_mac
from common.paths import configs_dir
from kernels import matrix
from rootfs.cards import check_profile_fits_card, default_nic_profile

CLUSTER_FILE = "cluster.toml"

# LTSP 3 session on the node's first screen, and the runlevel that goes
# with it (LTSP 3 clients start X in runlevel 5, a shell in runlevel 3).
SCREENS = {"startx": 5, "shell": 3}
DEFAULT_SCREEN = "startx"

# 2.4 needs a few MB for itself and the NFS-root userland; LTSP 3's minimum.
MIN_MEMORY_MB = 16

_NFS_ROOT = re.compile(r"(/[A-Za-z0-9._+-]+)+/?")
CLUSTER_KEYS = {"name", "line", "subnet", "server", "nfs_root", "screen"}
CLUSTER_REQUIRED = ("name", "line", "subnet", "server", "nfs_root")
NODE_KEYS = {"name", "mac", "ip", "cpu", "nic", "nic_profile", "memory_mb", "screen"}
NODE_REQUIRED = ("name", "mac", "ip", "cpu", "nic", "memory_mb")

# RFC 1123 host name label: it goes into dhcp-host=, lts.conf and DHCP option 12.
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Node:
    name: str
    mac: str                        # aa:bb:cc:dd:ee:ff, lower case
    ip: ipaddress.IPv4Address
    cpu: str
    nic: str                        # the card
    nic_profile: str                # the kernel's NIC profile
    memory_mb: int
    screen: str
    variant: matrix.Variant         # the kernel this node boots

    @property
    def variant_name(self) -> str:
        return self.variant.name


@dataclass(frozen=True)
class Migration:
    source: str
    target: str
    mismatched: str | None = None


@dataclass(frozen=True)
class Cluster:
    name: str
    line: matrix.Line
    subnet: ipaddress.IPv4Network
    server: ipaddress.IPv4Address
    nfs_root: str
    screen: str
    nodes: tuple[Node, ...]         # in file order
    source: Path
    migration: Migration | None = None

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    @property
    def line_name(self) -> str:
        return self.line.name

    def nodes_by_ip(self) -> list[Node]:
        return sorted(self.nodes, key=lambda node: node.ip)

    def variant_names(self) -> list[str]:
        """The kernel variants the nodes boot, each once, sorted."""
        return sorted({node.variant_name for node in self.nodes})

    def for_line(self, line_name: str) -> "Cluster":
        """The same nodes booting another line's kernels (the variant names
        are CPU x NIC profile, the same in every line)."""
        line = _load_line(line_name, self.source)
        nodes = []
        for node in self.nodes:
            try:
                nodes.append(replace(node, variant=variant_for(line, node.cpu, node.nic_profile)))
            except UserError as error:
                raise UserError(f"{self.source}: node {node.name!r}: field 'cpu': "
                                f"{error.args[0]}") from None
        return replace(self, line=line, nodes=tuple(nodes))


def default_cluster_path() -> Path:
    return configs_dir() / CLUSTER_FILE


def load_cluster(path: Path | str | None = None) -> Cluster:
    """Read and validate a cluster file (configs/cluster.toml by default)."""
    path = Path(path) if path is not None else default_cluster_path()
    data = _read_toml(path)
    unknown_tables = sorted(set(data) - {"cluster", "nodes", "migration"})
    if unknown_tables:
        raise UserError(f"{path}: unknown table(s) {', '.join(unknown_tables)}; "
                        f"a cluster file has [cluster], [[nodes]] and optionally [migration]")
    header = _parse_header(path, data.get("cluster"))
    nodes = _parse_nodes(path, data.get("nodes"), header)
    migration = _parse_migration(path, data.get("migration"), nodes) if "migration" in data else None
    return Cluster(nodes=nodes, source=path, migration=migration, **header)


# -- [migration] -------------------------------------------------------------

def missing_features(source: Node, target: Node) -> list[str]:
    """CPU features (configs/cpu/<cpu>.toml) the source node offers and the
    target lacks: what CRIU refuses to restore without."""
    have = set(matrix.cpu_spec(target.cpu).features)
    return [f for f in matrix.cpu_spec(source.cpu).features if f not in have]


def _parse_migration(path: Path, table, nodes: tuple[Node, ...]) -> Migration:
    def fail(field: str, why: str):
        raise UserError(f"{path}: [migration] field '{field}': {why}")

    if not isinstance(table, dict):
        raise UserError(f"{path}: [migration] must be a table (source, target, mismatched)")
    _check_keys(table, {"source", "target", "mismatched"}, ("source", "target"), fail)
    by_name = {node.name: node for node in nodes}
    chosen = {}
    for field in ("source", "target", "mismatched"):
        if field not in table:
            continue
        name = _text(table, field, fail)
        if name not in by_name:
            fail(field, f"no node {name!r} in [[nodes]] ({', '.join(by_name)})")
        chosen[field] = by_name[name]
    source, target = chosen["source"], chosen["target"]
    if source.name == target.name:
        fail("target", f"{target.name!r} is the source node: a migration needs two nodes")
    if matrix.cpu_spec(source.cpu).arch != "x86_64":
        fail("source", f"CRIU migrates x86-64 processes only; {source.name} is a "
                       f"{matrix.cpu_spec(source.cpu).arch} node")
    lacking = missing_features(source, target)
    if lacking:
        raise UserError(
            f"{path}: mixed CPUs: node {target.name} ({target.cpu}) lacks "
            f"{', '.join(lacking)} that node {source.name} ({source.cpu}) offers; a process "
            f"checkpointed on {source.name} may use them, and CRIU refuses to restore it on "
            f"{target.name}: give both nodes CPUs of the same features")
    mismatched = chosen.get("mismatched")
    if mismatched is not None and not missing_features(source, mismatched):
        fail("mismatched", f"node {mismatched.name} ({mismatched.cpu}) offers every feature of "
                           f"{source.name} ({source.cpu}): a refused restore there would prove nothing")
    return Migration(source.name, target.name, mismatched.name if mismatched else None)


# -- [cluster] ---------------------------------------------------------------

def _parse_header(path: Path, table) -> dict:
    if not isinstance(table, dict):
        raise UserError(f"{path}: missing [cluster] table (name, line, subnet, server, nfs_root)")

    def fail(field: str, why: str):
        raise UserError(f"{path}: [cluster] field '{field}': {why}")

    _check_keys(table, CLUSTER_KEYS, CLUSTER_REQUIRED, fail)
    name = _text(table, "name", fail)
    if not _HOSTNAME.match(name):
        fail("name", f"{name!r} is not a simple name (lower-case letters, digits, '-')")
    line = _load_line(_text(table, "line", fail), path)
    subnet_text = _text(table, "subnet", fail)
    try:
        subnet = ipaddress.IPv4Network(subnet_text, strict=True)
    except ValueError as error:
        fail("subnet", f"{subnet_text!r} is not an IPv4 network in CIDR form like "
                       f"192.168.67.0/24 ({error})")
    if subnet.prefixlen > 30:
        fail("subnet", f"{subnet} leaves no room for a server and nodes (at most /30)")
    server_text = _text(table, "server", fail)
    try:
        server = ipaddress.IPv4Address(server_text)
    except ValueError:
        fail("server", f"{server_text!r} is not an IPv4 address")
    why = _host_address_problem(server, subnet)
    if why:
        fail("server", f"{server} {why}")
    nfs_root = _text(table, "nfs_root", fail)
    if not _NFS_ROOT.fullmatch(nfs_root) or "/../" in f"{nfs_root}/" or "/./" in f"{nfs_root}/":
        # It reaches dnsmasq.conf, every pxelinux APPEND line and the NFS
        # server's export: ',' would start the nfsroot= options, ':' split
        # server from path, a quote, ';' or '$' end or run something there.
        fail("nfs_root", f"{nfs_root!r} must be an absolute path of letters, digits and '._+-' "
                         f"components (no whitespace, quotes, ',', ':', ';', '$', '..')")
    screen = table.get("screen", DEFAULT_SCREEN)
    if screen not in SCREENS:
        fail("screen", f"{screen!r} is not one of {', '.join(SCREENS)}")
    return {"name": name, "line": line, "subnet": subnet, "server": server,
            "nfs_root": nfs_root, "screen": screen}


def _load_line(name: str, path: Path) -> matrix.Line:
    if name not in matrix.line_names():
        raise UserError(f"{path}: [cluster] field 'line': unknown line {name!r}; "
                        f"valid lines: {', '.join(matrix.line_names())}")
    return matrix.load_line(name)


# -- [[nodes]] ---------------------------------------------------------------

def _parse_nodes(path: Path, tables, header: dict) -> tuple[Node, ...]:
    if not isinstance(tables, list) or not tables:
        raise UserError(f"{path}: no [[nodes]]: a cluster needs at least one node")
    errors: list[str] = []
    nodes: list[tuple[int, Node]] = []
    for index, table in enumerate(tables, start=1):
        label = _node_label(table, index)
        if not isinstance(table, dict):
            errors.append(f"node {label}: is not a table")
            continue

        def report(field: str, why: str, label=label):
            errors.append(f"node {label}: field '{field}': {why}")

        node = _parse_node(table, header, report)
        if node is not None:
            nodes.append((index, node))
    errors.extend(_duplicates(nodes))
    if errors:
        raise UserError(f"{path}: {len(errors)} problem(s) in [[nodes]]:\n  " + "\n  ".join(errors))
    return tuple(node for _, node in nodes)


def _node_label(table, index: int) -> str:
    name = table.get("name") if isinstance(table, dict) else None
    return repr(name) if isinstance(name, str) and name else f"#{index} (no name)"


class _Invalid(Exception):
    """A node field already reported; stop parsing this node."""


def _parse_node(table: dict, header: dict, report) -> Node | None:
    """The node, or None once its first bad field has been reported."""
    def stop(field: str, why: str):
        report(field, why)
        raise _Invalid

    try:
        _check_keys(table, NODE_KEYS, NODE_REQUIRED, stop)
        name = _text(table, "name", stop)
        if not _HOSTNAME.match(name):
            stop("name", f"{name!r} is not a host name (lower-case letters, digits, '-', "
                         f"at most 63)")
        mac = _mac(_text(table, "mac", stop), stop)
        ip = _node_ip(_text(table, "ip", stop), header, stop)
        cpu = _text(table, "cpu", stop)
        cpus = [c for c in matrix.cpu_names() if matrix.cpu_spec(c).arch == header["line"].arch]
        if cpu not in cpus:
            stop("cpu", f"unknown CPU {cpu!r}; valid CPUs: {', '.join(cpus)}")
        card = _text(table, "nic", stop)
        if card not in matrix.cards():
            stop("nic", f"unknown network card {card!r}; valid cards (configs/cards.toml): "
                        f"{', '.join(matrix.cards())}")
        profile = table.get("nic_profile", default_nic_profile(card))
        if not isinstance(profile, str):
            stop("nic_profile", f"must be a string, not {profile!r}")
        check_profile_fits_card(profile, card, stop)
        memory_mb = table["memory_mb"]
        if not isinstance(memory_mb, int) or isinstance(memory_mb, bool) or memory_mb < MIN_MEMORY_MB:
            stop("memory_mb", f"must be a whole number of MB, at least {MIN_MEMORY_MB}, "
                              f"not {memory_mb!r}")
        screen = table.get("screen", header["screen"])
        if screen not in SCREENS:
            stop("screen", f"{screen!r} is not one of {', '.join(SCREENS)}")
        try:
            variant = variant_for(header["line"], cpu, profile)
        except UserError as error:
            stop("cpu", error.args[0])
    except _Invalid:
        return None
    return Node(name=name, mac=mac, ip=ip, cpu=cpu, nic=card, nic_profile=profile,
                memory_mb=memory_mb, screen=screen, variant=variant)


def variant_for(line: matrix.Line, cpu: str, nic_profile: str) -> matrix.Variant:
    """The kernel variant a node boots: Variant(line, cpu, nic_profile),
    which the line must build (line.variant() says which it does)."""
    return line.variant(matrix.Variant(line.name, cpu, nic_profile).name)


def _mac(text: str, stop) -> str:
    try:
        return normalise_mac(text)
    except UserError as error:
        stop("mac", error.args[0])


def _node_ip(text: str, header: dict, stop) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        stop("ip", f"{text!r} is not an IPv4 address")
    if ip == header["server"]:
        stop("ip", f"{ip} is the server's address")
    why = _host_address_problem(ip, header["subnet"])
    if why:
        stop("ip", f"{ip} {why}")
    return ip


def _host_address_problem(ip: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network) -> str | None:
    if ip not in subnet:
        return f"is outside the subnet {subnet}"
    if ip == subnet.network_address:
        return f"is the network address of {subnet}"
    if ip == subnet.broadcast_address:
        return f"is the broadcast address of {subnet}"
    return None


def _duplicates(nodes: list[tuple[int, Node]]) -> list[str]:
    """Names, MACs and addresses must each be unique (MACs compared
    normalised, so 00:60:08:AA:.. and 00:60:08:aa:.. are one card)."""
    errors = []
    for field in ("name", "mac", "ip"):
        first: dict = {}
        for index, node in nodes:
            value = getattr(node, field)
            if value not in first:
                first[value] = (index, node)
                continue
            other_index, other = first[value]
            if field == "name":
                errors.append(f"node {node.name!r} (#{index}): field 'name': node #{other_index} "
                              f"already has this name")
            else:
                errors.append(f"node {node.name!r}: field '{field}': {value} is already used by "
                              f"node {other.name!r}")
    return errors


# -- helpers -----------------------------------------------------------------

def _check_keys(table: dict, known: set, required: tuple, fail) -> None:
    for key in sorted(set(table) - known):
        fail(key, f"unknown field (known: {', '.join(sorted(known))})")
    for key in required:
        if key not in table:
            fail(key, "missing")


def _text(table: dict, key: str, fail) -> str:
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        fail(key, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: cluster file missing") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
