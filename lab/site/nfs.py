"""A user-space NFSv3 server for the nodes' root: nfs-ganesha (VFS backend)
with rpcbind, started and stopped by the project.

    with NfsServer(export_dir, state_dir, pseudo="/opt/ltsp/i386") as server:
        ...   # nodes mount <server>:/opt/ltsp/i386 (or the real export_dir path)

Why ganesha: the kernel's nfsd is not available on these machines; Debian's
nfs-ganesha serves NFSv3 over TCP and UDP from user space.  Measured facts
the configuration carries (docs/cluster.md, "NFS root"):
  * `Squash = No_Root_Squash`: the nodes' init runs as root and writes;
  * `PrivilegedPort = false`: QEMU's user network connects from
    unprivileged ports;
  * rpcbind must run first, else ganesha exits "Cannot register NFS V3 on UDP";
  * ganesha has no NFSv2 (the 2.4 default): nodes mount with v3.

Everything the server writes (config, log, pid file, NFSv4 recovery dir)
goes under state_dir.  In a NetNamespace (lab/site/netns.py) rpcbind and
ganesha are our own children in a network with nothing else in it; without
one they run on the host, reusing a running rpcbind if there is one.

Both daemons run in the foreground as children of this process: stop()
(also on exceptions and Ctrl-C, through __exit__) sends SIGTERM, waits,
then SIGKILLs and reaps them; PR_SET_PDEATHSIG kills them if Python dies."""
import glob
import socket
import subprocess
import time
from pathlib import Path

from common.errors import InfraError, UserError
from common.paths import atomic_write_text
from lab.site.netns import NetNamespace, require_tool
from common.procs import die_with_parent
from lab.spawn import stop_process, wait_for_daemon

# Everything the NFS server needs, for setup.sh and for error messages.
REQUIRED_PACKAGES = ("nfs-ganesha", "nfs-ganesha-vfs", "rpcbind")
# binary -> Debian package
TOOLS = {"ganesha.nfsd": "nfs-ganesha", "rpcbind": "rpcbind", "rpcinfo": "rpcbind"}
# ganesha loads its VFS backend (FSAL) as a plugin from a separate package.
FSAL_VFS_GLOBS = ("/usr/lib/*/ganesha/libfsalvfs.so", "/usr/lib/ganesha/libfsalvfs.so",
                  "/usr/lib64/ganesha/libfsalvfs.so")

NFS_PORT = 2049
RPCBIND_PORT = 111
NFS_PROGRAM, MOUNT_PROGRAM = 100003, 100005
# What a host-mode rpcbind of ours leaves in /run (lock, socket, warm-start
# state written on SIGTERM); removed after it stops unless they were there before.
RPCBIND_HOST_FILES = (Path("/run/rpcbind.sock"), Path("/run/rpcbind.lock"),
                      Path("/run/rpcbind/rpcbind.xdr"), Path("/run/rpcbind/portmap.xdr"))
STARTUP_SECONDS = 30.0      # measured: ganesha answers ~1-2 s after start


def _missing(binary: str, package: str) -> InfraError:
    return InfraError(f"{binary} not found: install the Debian package `{package}` "
                      f"(the NFS server needs: {' '.join(REQUIRED_PACKAGES)})")


def find_tools() -> dict[str, str]:
    """binary name -> path for ganesha.nfsd, rpcbind, rpcinfo and the VFS
    FSAL plugin ("fsal_vfs"); an InfraError names the missing package."""
    tools = {}
    for binary, package in TOOLS.items():
        try:
            tools[binary] = require_tool(binary, package)
        except InfraError:
            raise _missing(binary, package) from None
    found = [path for pattern in FSAL_VFS_GLOBS for path in sorted(glob.glob(pattern))]
    if not found:
        raise _missing("ganesha's VFS backend (libfsalvfs.so)", "nfs-ganesha-vfs")
    tools["fsal_vfs"] = found[0]
    return tools


def _quoted(value: str, what: str) -> str:
    if not value.startswith("/") or any(c in value for c in '"\n;{}'):
        raise UserError(f"NFS {what} {value!r} must be an absolute path without quotes, "
                        f"';', braces or newlines")
    return f'"{value}"'


def _export_block(export_dir, pseudo: str | None, export_id: int, access: str, *,
                  server_writes: bool = False) -> str:
    """server_writes: the server side also writes into this export (files
    made beside ganesha, not through it): no attribute caching, else ganesha
    shows a directory's new files only after its 60 s cache expires
    (measured: commands dropped for a node were seen a minute late)."""
    export_dir = str(Path(export_dir))
    pseudo = pseudo or export_dir
    if not isinstance(export_id, int) or not 1 <= export_id <= 65535:
        raise UserError(f"NFS Export_Id {export_id!r} must be 1..65535")
    if access not in ("RW", "RO"):
        raise UserError(f"NFS access {access!r} must be RW or RO")
    return (
        "EXPORT {\n"
        f"    Export_Id = {export_id};\n"
        f"    Path = {_quoted(export_dir, 'export dir')};\n"
        f"    Pseudo = {_quoted(pseudo, 'pseudo path')};\n"
        f"    Access_Type = {access};\n"
        "    Squash = No_Root_Squash;     # the node init writes as root\n"
        "    SecType = sys;\n"
        "    Protocols = 3;\n"
        "    Transports = TCP, UDP;       # 6.1 mounts over TCP, 2.4 over UDP\n"
        "    PrivilegedPort = false;      # QEMU user networking uses ports > 1023\n"
        + ("    Attr_Expiration_Time = 0;    # the server writes here too: no stale directory\n"
           if server_writes else "") +
        "    FSAL {\n"
        "        Name = VFS;\n"
        "    }\n"
        "}\n")


def render_ganesha_conf(export_dir, *, state_dir, pseudo: str | None = None,
                        export_id: int = 1, access: str = "RW", extra_exports=()) -> str:
    """ganesha.conf exporting export_dir over NFSv3 (TCP and UDP), read-write
    unless access="RO", and each (dir, pseudo, access) of extra_exports (a
    writable one is where the server drops files for the nodes: uncached).

    pseudo is the path clients mount (the cluster's nfs_root, e.g.
    /opt/ltsp/i386); with mount_path_pseudo an NFSv3 client may mount it as
    well as the real path.  Default: the real path."""
    exports = _export_block(export_dir, pseudo, export_id, access)
    for offset, (directory, extra_pseudo, extra_access) in enumerate(extra_exports, 1):
        exports += _export_block(directory, extra_pseudo, export_id + offset, extra_access,
                                 server_writes=extra_access == "RW")
    recovery = str(Path(state_dir) / "recovery")
    return (
        "# ganesha.conf generated by ltsp-mosix (lab/site/nfs.py): the nodes' NFS root.\n"
        "NFS_CORE_PARAM {\n"
        "    Protocols = 3;               # NFSv3 only: what 2.4 and 6.1 nodes mount\n"
        f"    NFS_Port = {NFS_PORT};\n"
        "    mount_path_pseudo = true;    # v3 clients may mount the Pseudo path\n"
        "    Enable_NLM = false;          # nfsroot mounts with nolock; no statd needed\n"
        "    Enable_RQUOTA = false;\n"
        "}\n"
        "NFSV4 {\n"
        "    Graceless = true;            # serve at once, no grace period\n"
        f"    RecoveryRoot = {_quoted(recovery, 'recovery dir')};   # not /var/lib/nfs\n"
        "}\n"
        + exports +
        "LOG {\n"
        "    Default_Log_Level = EVENT;\n"
        "}\n"
    )


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Does something listen on host:port (TCP) in *this* network namespace?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


class NfsServer:
    """ganesha + rpcbind serving export_dir; a context manager."""

    def __init__(self, export_dir, state_dir, *, pseudo: str | None = None,
                 namespace: NetNamespace | None = None,
                 startup_timeout: float = STARTUP_SECONDS, access: str = "RW", extra_exports=()):
        """access: of export_dir ("RO": the nodes cannot change their root);
        extra_exports: (dir, pseudo, access) served beside it."""
        self.export_dir = Path(export_dir).resolve()
        self.access = access
        self.extra_exports = tuple((Path(d).resolve(), p, a) for d, p, a in extra_exports)
        self.state_dir = Path(state_dir).resolve()
        self.pseudo = pseudo
        self.namespace = namespace
        self.startup_timeout = startup_timeout
        self.ganesha: subprocess.Popen | None = None
        self.rpcbind: subprocess.Popen | None = None
        self.rpcbind_reused = False
        self._host_files_before: set[Path] = set()
        self.ready_seconds: float | None = None
        self.registrations = ""           # `rpcinfo -p` once ready
        self._tools: dict[str, str] = {}

    conf_path = property(lambda self: self.state_dir / "ganesha.conf")
    log_path = property(lambda self: self.state_dir / "ganesha.log")
    pid_path = property(lambda self: self.state_dir / "ganesha.pid")
    stderr_path = property(lambda self: self.state_dir / "ganesha.stderr")
    rpcbind_log_path = property(lambda self: self.state_dir / "rpcbind.log")

    @property
    def mount_path(self) -> str:
        """What a client puts after "server:" in nfsroot=."""
        return self.pseudo or str(self.export_dir)

    def __enter__(self) -> "NfsServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        """Validate, write the config, start rpcbind and ganesha, and return
        once both answer RPC calls; on any failure stop what was started."""
        self._tools = find_tools()
        for directory in [self.export_dir] + [d for d, _, _ in self.extra_exports]:
            if not directory.is_dir():
                raise UserError(f"NFS export {directory} is not a directory")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.conf_path, render_ganesha_conf(
            self.export_dir, state_dir=self.state_dir, pseudo=self.pseudo, access=self.access,
            extra_exports=self.extra_exports))
        if self.namespace is None and _port_open(NFS_PORT):
            raise InfraError(f"port {NFS_PORT} is already in use on this host (another NFS "
                             f"server?): run the NFS server in a NetNamespace instead")
        started = time.monotonic()
        try:
            self._start_rpcbind()
            self._start_ganesha()
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise

    def _argv(self, argv: list[str]) -> list[str]:
        return self.namespace.argv(argv) if self.namespace is not None else argv

    def _spawn(self, argv: list[str], output: Path) -> subprocess.Popen:
        with open(output, "wb") as out:
            # A session of its own: a Ctrl-C on the terminal reaches Python,
            # whose teardown then stops the daemon in order.
            return subprocess.Popen(self._argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent)

    def _rpcinfo(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self._argv([self._tools["rpcinfo"], *args]), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=20)

    def _start_rpcbind(self) -> None:
        if self.namespace is None and _port_open(RPCBIND_PORT):
            self.rpcbind_reused = True         # the host's rpcbind: use it, never stop it
            return
        if self.namespace is None:
            self._host_files_before = {path for path in RPCBIND_HOST_FILES if path.exists()}
        # -f: foreground.  No -w: no warm-start state from an earlier run.
        self.rpcbind = self._spawn([self._tools["rpcbind"], "-f"], self.rpcbind_log_path)
        wait_for_daemon(self.rpcbind, "rpcbind", lambda: self._rpcinfo("-p", "127.0.0.1").returncode == 0,
                        timeout=self.startup_timeout, logs=(self.rpcbind_log_path,))

    def _start_ganesha(self) -> None:
        self.pid_path.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)        # ganesha appends: keep this run's only
        self.ganesha = self._spawn([self._tools["ganesha.nfsd"], "-F", "-f", str(self.conf_path),
                                    "-L", str(self.log_path), "-p", str(self.pid_path)],
                                   self.stderr_path)

    def _wait_ready(self, started: float) -> None:
        """Ready = NULL calls to NFS v3 and MOUNT v3 over TCP succeed (rpcinfo
        looks their ports up in rpcbind, so registration is checked too)."""
        def answers_nfsv3() -> bool:
            return all(self._rpcinfo("-t", "127.0.0.1", str(program), "3").returncode == 0
                       for program in (NFS_PROGRAM, MOUNT_PROGRAM))
        wait_for_daemon(self.ganesha, "ganesha.nfsd (NFSv3)", answers_nfsv3,
                        timeout=self.startup_timeout - (time.monotonic() - started),
                        logs=(self.log_path, self.stderr_path), poll=0.2)
        self.ready_seconds = round(time.monotonic() - started, 2)
        self.registrations = self._rpcinfo("-p", "127.0.0.1").stdout

    # -- stop --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop ganesha, then our rpcbind (never a reused one).  Idempotent."""
        stop_process(self.ganesha)
        stop_process(self.rpcbind)
        if self.rpcbind is not None and self.namespace is None:
            for path in set(RPCBIND_HOST_FILES) - self._host_files_before:
                path.unlink(missing_ok=True)
        self.pid_path.unlink(missing_ok=True)

    def pids(self) -> list[int]:
        """Our daemons still running (for tests: empty after stop())."""
        return [p.pid for p in (self.ganesha, self.rpcbind) if p is not None and p.poll() is None]
