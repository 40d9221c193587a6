"""Three Linux 6.1 nodes and their server on one virtual network, inside a
network namespace the runner creates and removes (qemu/cluster_run.py).

Each node PXE-boots its own kernel (pxelinux.cfg/01-<mac>) from dnsmasq,
mounts its root over NFS from ganesha, reports its address and sends ICMP
echo requests to the two others from its init (raw socket); the test checks
the console, the files the nodes left on the server, and the teardown.

Variants: pentium (the kernel_61 fixture) plus athlon and p4 when they are
built in build/linux-6.1/variants/ (or in $LTSP_MOSIX_TEST_VARIANTS_DIR, a
variants folder of another build dir); otherwise those nodes boot the
pentium kernel too (the run prints which).  ~30 s here."""
import os
from pathlib import Path

import pytest

from qemu.cluster_run import run_cluster_test
from qemu.netns import namespace_exists
from rootfs.cluster import load_cluster
from tests.e2e.test_nfsroot import leftover_processes

pytestmark = pytest.mark.e2e

NODES = [  # name, mac, ip, preferred cpu variant, QEMU card
    ("node01", "52:54:00:67:00:10", "192.168.67.10", "pentium", "e1000"),
    ("node02", "52:54:00:67:00:11", "192.168.67.11", "athlon", "rtl8139"),
    ("node03", "52:54:00:67:00:12", "192.168.67.12", "p4", "ne2k_pci"),
]


def _cluster_file(path, cpus) -> object:
    text = ('[cluster]\nname = "qemu67"\nline = "linux-6.1"\nsubnet = "192.168.67.0/24"\n'
            'server = "192.168.67.1"\nnfs_root = "/opt/ltsp/i386"\n')
    for (name, mac, ip, _, nic), cpu in zip(NODES, cpus):
        text += (f'\n[[nodes]]\nname = "{name}"\nmac = "{mac}"\nip = "{ip}"\ncpu = "{cpu}"\n'
                 f'nic = "{nic}"\nmemory_mb = 128\n')
    path.write_text(text)
    return load_cluster(path)


def test_three_nodes_ping_each_other_over_nfs_root(kernel_61, tmp_path, namespaces_allowed):
    folders = [kernel_61.parents[2]]                # build/linux-6.1/variants
    if os.environ.get("LTSP_MOSIX_TEST_VARIANTS_DIR"):
        folders.append(Path(os.environ["LTSP_MOSIX_TEST_VARIANTS_DIR"]))
    kernels = {"pentium": kernel_61}
    for cpu in ("athlon", "p4"):
        for folder in folders:
            image = folder / cpu / "out" / "bzImage"
            if cpu not in kernels and image.is_file():
                kernels[cpu] = image
    cpus = [cpu if cpu in kernels else "pentium" for *_, cpu, _ in NODES]
    print(f"\nnode variants: {dict(zip([n[0] for n in NODES], cpus))}, kernels: "
          f"{ {cpu: str(kernels[cpu]) for cpu in sorted(set(cpus))} }")
    cluster = _cluster_file(tmp_path / "cluster.toml", cpus)

    results = run_cluster_test(cluster, kernels, tmp_path / "state")

    addresses = {name: ip for name, _, ip, *_ in NODES}
    for result in results:
        print(f"{result.name}: variant {result.variant}, {result.verdict}, boot "
              f"{result.boot_seconds}s (to the init on NFS), marker {result.seconds}s, "
              f"ip {result.ip}, pings {result.pings}")
    assert [r.name for r in results] == [n[0] for n in NODES]
    for result in results:
        others = sorted(ip for name, ip in addresses.items() if name != result.name)
        assert result.verdict == "pass", f"{result.name}: {result.kind}: {result.console_line} " \
                                         f"(log {result.log_path})"
        assert result.ip == addresses[result.name]
        assert result.report.loaded_kernel == f"lts/linux-6.1/vmlinuz-{result.variant}"
        assert sorted(ip for ip, ok in result.pings.items() if ok) == others, result.pings
        assert sorted(ip for ip, ok in result.done.items() if ok) == others, result.done
        assert result.booted == {"host": result.name, "release": result.report.kernel_release,
                                 "ip": addresses[result.name]}
        assert result.problems == [], result.problems
    assert results.passed
    # Teardown: namespace (with bridge and taps) gone, no process of ours left.
    assert results.namespace and results.namespace_removed
    assert not namespace_exists(results.namespace)
    assert leftover_processes(tmp_path) == []
    assert results.seconds < 150
