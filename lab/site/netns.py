"""A network namespace of our own for a virtual cluster: the server's
daemons (rpcbind, ganesha, dnsmasq) and the nodes' QEMUs run inside it, so
nothing touches the host's network, its ports or its /run.

    with NetNamespace() as ns:                 # ip netns add ltspm-<random>
        ns.add_bridge("br0", "192.168.67.1/24")
        ns.add_tap("tap0", "br0")
        subprocess.Popen(ns.argv(["dnsmasq", ...]))

Two namespaces, in fact, held by one "holder" process (`sleep`):
  * the network namespace `ip netns add` made (named, so `ip netns list`
    shows it while a run is going on);
  * a private mount namespace with a fresh tmpfs on /run: rpcbind insists on
    /run/rpcbind.sock and /run/rpcbind.lock (a second rpcbind on the host
    would refuse: "another rpcbind is already running"), ganesha finds
    rpcbind through that socket, dnsmasq and ganesha keep pid files there.
Commands enter both with `nsenter --target <holder> --net --mount`, which
execs the command in place (no fork): a Popen of ns.argv(...) is the daemon
itself, and PR_SET_PDEATHSIG set before exec still holds.

Teardown (destroy(), also on exceptions and Ctrl-C through __exit__):
every process still in the namespace was started by us into it, so each is
killed by pid; then `ip netns del`, which takes the bridge and taps with it.
If Python itself is SIGKILLed, the holder and the daemons die with it
(PDEATHSIG) and only the empty named namespace stays behind;
remove_stale_namespaces() deletes such leftovers."""
import os
import secrets
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from common.errors import InfraError, UserError
from common.procs import die_with_parent

NAME_PREFIX = "ltspm"
NETNS_DIR = Path("/run/netns")
# What the tools are called and which Debian package brings each.
TOOL_PACKAGES = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux"}
# The holder prints this once /run is private: then the namespace is usable.
_READY = "ltsp-mosix-netns-ready"
_HOLDER_SCRIPT = (
    "mount -t tmpfs -o mode=0755,size=16m ltsp-mosix-run /run"
    " && mkdir -p /run/lock /run/rpcbind /run/ganesha /run/dnsmasq"
    f" && echo {_READY} && exec sleep 2147483647")
# A leftover namespace must be at least this old (and empty) before
# remove_stale_namespaces() deletes it: a concurrent run's brand-new
# namespace has no processes for a moment too.
STALE_AGE_SECONDS = 600
HOLDER_START_SECONDS = 20


def require_tool(binary: str, package: str) -> str:
    """Absolute path of binary, or an InfraError naming its Debian package."""
    found = shutil.which(binary) or next(
        (str(Path(d) / binary) for d in ("/usr/sbin", "/sbin")
         if (Path(d) / binary).is_file() and os.access(Path(d) / binary, os.X_OK)), None)
    if found is None:
        raise InfraError(f"{binary} not found: install the Debian package `{package}`")
    return found


class NamespaceUnavailable(InfraError):
    """`ip netns add` failed: not root, no CAP_SYS_ADMIN, or a container that
    forbids namespaces.  Tests skip on it."""


def _run(argv: list[str], what: str, *, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise InfraError(f"{what} failed: `{' '.join(argv)}` exited {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def _check_ifname(name: str) -> None:
    if not name or len(name) > 15 or any(c in name for c in "/ \t\n:"):
        raise UserError(f"{name!r} is not a valid interface name (1-15 characters, no '/', ':', blanks)")


class NetNamespace:
    def __init__(self, prefix: str = NAME_PREFIX):
        self.name = f"{prefix}-{secrets.token_hex(4)}"
        self.holder: subprocess.Popen | None = None
        self._ip = self._nsenter = None
        self.created = False

    # -- life cycle ----------------------------------------------------------

    def __enter__(self) -> "NetNamespace":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def create(self) -> None:
        self._ip = require_tool("ip", TOOL_PACKAGES["ip"])
        self._nsenter = require_tool("nsenter", TOOL_PACKAGES["nsenter"])
        unshare = require_tool("unshare", TOOL_PACKAGES["unshare"])
        proc = _run([self._ip, "netns", "add", self.name], "ip netns add", check=False)
        if proc.returncode != 0:
            raise NamespaceUnavailable(
                f"cannot create a network namespace (`ip netns add {self.name}`: "
                f"{proc.stderr.strip() or 'exit ' + str(proc.returncode)}); the cluster "
                f"test needs root or CAP_SYS_ADMIN + CAP_NET_ADMIN")
        self.created = True
        try:
            self.ip("link", "set", "lo", "up")
            self._start_holder(unshare)
        except BaseException:
            self.destroy()
            raise

    def _start_holder(self, unshare: str) -> None:
        self.holder = subprocess.Popen(
            [self._ip, "netns", "exec", self.name, unshare, "--mount", "--propagation", "private",
             "sh", "-c", _HOLDER_SCRIPT],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent)
        ready, _, _ = select.select([self.holder.stdout], [], [], HOLDER_START_SECONDS)
        line = self.holder.stdout.readline().strip() if ready else ""   # "" also on EOF
        if line != _READY:
            self.holder.kill()
            _, err = self.holder.communicate(timeout=10)
            raise InfraError(f"could not set up the namespace {self.name} (private /run): "
                             f"{err.strip() or line or 'holder exited'}")

    def destroy(self) -> None:
        """Kill what is left inside, delete the namespace.  Idempotent."""
        if self.created:
            for pid in self.pids():
                if self.holder is None or pid != self.holder.pid:
                    _kill(pid)
        if self.holder is not None:
            _kill(self.holder.pid)
            try:
                self.holder.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass
            self.holder = None
        if self.created:
            _run([self._ip, "netns", "del", self.name], "ip netns del", check=False)
            self.created = False

    # -- inside the namespace -------------------------------------------------

    def argv(self, argv: list[str]) -> list[str]:
        """argv run inside the namespace (network and private /run)."""
        if self.holder is None:
            raise UserError(f"namespace {self.name} is not running")
        return [self._nsenter, f"--target={self.holder.pid}", "--net", "--mount", "--", *argv]

    def ip(self, *args: str) -> str:
        return _run([self._ip, "-n", self.name, *args], f"ip -n {self.name} {args[0]}").stdout

    def add_bridge(self, name: str, address: str) -> None:
        """A bridge with the server's address (CIDR form, e.g. 192.168.67.1/24)."""
        _check_ifname(name)
        self.ip("link", "add", name, "type", "bridge")
        # No STP / forwarding delay: ports forward as soon as they are up.
        self.ip("link", "set", name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self.ip("addr", "add", address, "dev", name)
        self.ip("link", "set", name, "up")

    def add_tap(self, name: str, bridge: str) -> None:
        """A tap device for one QEMU (-netdev tap,ifname=name), port of bridge."""
        _check_ifname(name)
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        self.ip("link", "set", name, "master", bridge)
        self.ip("link", "set", name, "up")

    def pids(self) -> list[int]:
        if not self.created:
            return []
        proc = _run([self._ip, "netns", "pids", self.name], "ip netns pids", check=False)
        return [int(word) for word in proc.stdout.split() if word.isdigit()]

    def exists(self) -> bool:
        return namespace_exists(self.name)


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def remove_stale_namespaces(prefix: str = NAME_PREFIX,
                            min_age: float = STALE_AGE_SECONDS) -> list[str]:
    """Delete our namespaces (prefix-*) that a killed run left behind: empty
    (no process inside) and older than min_age.  Returns their names."""
    ip = require_tool("ip", TOOL_PACKAGES["ip"])
    removed = []
    if not NETNS_DIR.is_dir():
        return removed
    for path in sorted(NETNS_DIR.glob(f"{prefix}-*")):
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < min_age:
            continue
        pids = _run([ip, "netns", "pids", path.name], "ip netns pids", check=False).stdout.split()
        if not pids:
            _run([ip, "netns", "del", path.name], "ip netns del", check=False)
            removed.append(path.name)
    return removed
