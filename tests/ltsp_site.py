"""A Debian LTSP 23 server in a network namespace the test makes, for the
release's packages as a site installs them (tests/aptroot.py):

- `ltsp ipxe` is Debian's own (package ltsp 23.02), run as typed in a
  private mount namespace where /usr/share/ltsp is LTSP's folder overlaid
  with what the packages installed in the server root (their drop-ins),
  /etc/ltsp is the server root's (its ltsp.conf) and /srv the server
  root's: it writes /srv/tftp/ltsp/ltsp.ipxe there and copies iPXE's
  undionly.kpxe beside it.  Nothing on this machine changes.
- dnsmasq runs on LTSP's own configuration (its ltsp-dnsmasq.conf
  template, as `ltsp dnsmasq` would install it, with tftp-root the server
  root's and the namespace's bridge as interface; `ltsp dnsmasq` itself
  only writes /etc/dnsmasq.d and restarts a system service).
- The node is QEMU with an e1000 and its PXE ROM: DHCP, then LTSP's menu
  (ltsp.ipxe, or undionly.kpxe first when the ROM lacks a feature LTSP
  needs), which takes the entry DEFAULT_IMAGE names in the node's
  ltsp.conf section."""
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.site.virtual import Dnsmasq
from lab.boot.machine import machine_for
from lab.site.netns import NetNamespace
from lab.spawn import running
from lab.boot.watcher import watch_stream

LTSP_DNSMASQ_TEMPLATE = Path("/usr/share/ltsp/server/dnsmasq/ltsp-dnsmasq.conf")
SERVER_IP = "192.168.67.1"        # LTSP's own subnet (ltsp-dnsmasq.conf's dhcp-range)
BRIDGE = "ltspbr0"


def ltsp_conf(nodes: dict[str, str], timeout_ms: int = 1500) -> str:
    """ltsp.conf: a section per node MAC choosing its default entry; the
    menu stays up timeout_ms (it shows, then takes the default)."""
    text = f"[server]\nMENU_TIMEOUT={timeout_ms}\n"
    for mac, entry in nodes.items():
        text += f"\n[{mac.lower()}]\nDEFAULT_IMAGE={entry}\n"
    return text


def dnsmasq_conf(tftp_root: Path) -> str:
    """LTSP's ltsp-dnsmasq.conf for this namespace: its tags and boot files
    unchanged; tftp-root the server root's; the proxy range (for a LAN with
    another DHCP server) and the DNS option left out; the bridge only."""
    lines = []
    for line in LTSP_DNSMASQ_TEMPLATE.read_text().splitlines():
        if line.startswith("tftp-root="):
            line = f"tftp-root={tftp_root}"
        elif line.startswith("dhcp-range=set:proxy") or line.startswith("dhcp-option=option:dns-server"):
            continue
        lines.append(line)
    lines += [f"interface={BRIDGE}", "bind-interfaces", "except-interface=lo", ""]
    return "\n".join(lines)


def run_ltsp_ipxe(namespace: NetNamespace, server_root: Path) -> subprocess.CompletedProcess:
    script = "\n".join([
        "set -e",
        "mount --make-rprivate /",
        f"mount -t overlay ltsp-mosix -o lowerdir={server_root}/usr/share/ltsp:/usr/share/ltsp /usr/share/ltsp",
        f"mount --bind {server_root}/etc/ltsp /etc/ltsp",
        f"mount --bind {server_root}/srv /srv",
        "DEBUG_LOG=0 ltsp ipxe",
    ])
    return subprocess.run(namespace.argv(["unshare", "--mount", "sh", "-c", script]),
                          capture_output=True, text=True, timeout=120)


@dataclass
class LtspServer:
    namespace: NetNamespace
    root: Path
    state: Path

    def boot(self, *, mac: str, cpu: str, mem_mb: int, name: str, timeout: float = 120.0):
        """One node from its NIC's PXE ROM to the kernel's marker; returns the watch."""
        tap = f"ltsptap{name[-1]}"
        self.namespace.add_tap(tap, BRIDGE)
        machine = machine_for(cpu=cpu, nic="e1000", mem_mb=mem_mb, mac=mac, name=f"ltsp-mosix-ltsp23-{name}")
        argv = self.namespace.argv([machine.qemu_path(), *machine.common_args("pxe"),
                                    "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                                    "-device", machine.nic_device(None), "-boot", "n"])
        with running(argv, cwd=self.state) as (child, started_at):
            return watch_stream(child, timeout=timeout, log_path=self.state / f"{name}.log",
                                started_at=started_at)


@contextmanager
def ltsp_server(server_root: Path, state: Path):
    """The namespace, LTSP's menu written by `ltsp ipxe`, dnsmasq serving it."""
    state.mkdir(parents=True, exist_ok=True)
    with NetNamespace() as namespace:
        namespace.add_bridge(BRIDGE, f"{SERVER_IP}/24")
        ipxe = run_ltsp_ipxe(namespace, server_root)
        if ipxe.returncode != 0:
            raise AssertionError(f"ltsp ipxe failed ({ipxe.returncode}):\n{ipxe.stdout}\n{ipxe.stderr}")
        conf = state / "ltsp-dnsmasq.conf"
        conf.write_text(dnsmasq_conf(server_root / "srv/tftp"))
        with Dnsmasq(conf, state, namespace):
            yield LtspServer(namespace, server_root, state), ipxe
