"""`doit cluster-test` as a user types it: the three Linux 6.1 nodes of
configs/cluster-qemu.toml (pentium, athlon and p4, three different kernels
from the run's cache, on three different cards) and their server on one
virtual network, inside a network namespace the run creates and removes
(lab/cluster.py).

Each node PXE-boots its own kernel (pxelinux.cfg/01-<mac>) from dnsmasq,
mounts its root over NFS from ganesha, reports its address and sends ICMP
echo requests to the two others from its init (raw socket); the test checks
what the run wrote (results.json), the files the nodes left on the server,
and the teardown."""
import json

import pytest

from common.paths import configs_dir
from lab.site.netns import namespace_exists
from rootfs.cluster import load_cluster
from tests.conftest import project_env, run_doit, session_build_dir
from tests.e2e.test_nfsroot import leftover_processes

pytestmark = pytest.mark.e2e


def test_doit_cluster_test_boots_three_cpu_variants_that_ping_each_other(kernels, namespaces_allowed):
    cluster = load_cluster(configs_dir() / "cluster-qemu.toml")
    variants = [node.variant_name for node in cluster.nodes]
    assert len(set(variants)) == 3, f"configs/cluster-qemu.toml should name three CPU variants: {variants}"
    images = kernels("linux-6.1", *variants)        # built once per run, shared with other modules

    result = run_doit("cluster-test", env=project_env(), check=False)
    print(result.stdout[-4000:], result.stderr[-2000:])
    assert result.returncode == 0, result.stderr[-2000:]
    state = session_build_dir() / "linux-6.1" / "cluster-test"
    record = json.loads((state / "results.json").read_text())

    addresses = {node.name: str(node.ip) for node in cluster.nodes}
    assert [n["name"] for n in record["nodes"]] == [node.name for node in cluster.nodes]
    for node, expected in zip(record["nodes"], cluster.nodes):
        others = sorted(ip for name, ip in addresses.items() if name != node["name"])
        assert node["passed"], f"{node['name']}: {node['kind']}: {node['console_line']} (log {node['log_path']})"
        assert node["variant"] == expected.variant_name and node["cpu"] == expected.cpu
        assert node["report"]["ip"] == addresses[node["name"]]
        assert node["report"]["loaded_kernel"] == f"lts/linux-6.1/vmlinuz-{node['variant']}"
        assert sorted(ip for ip, ok in node["report"]["pings"].items() if ok) == others, node["report"]
        assert sorted(ip for ip, ok in node["done"].items() if ok) == others, node["done"]
        assert node["booted"] == {"host": node["name"], "release": node["report"]["kernel_release"],
                                  "ip": addresses[node["name"]]}
        assert node["problems"] == []
        # each node ran the kernel of its own variant: the one the cache built
        built = json.loads((images[node["variant"]].parent / "build.json").read_text())
        assert node["report"]["kernel_release"] == built["kernel_release"]
    assert len({n["cpu"] for n in record["nodes"]}) == 3
    assert record["passed"] is True
    # Teardown: namespace (with bridge and taps) gone, no process of ours left.
    assert record["namespace"] and record["namespace_removed"] is True
    assert not namespace_exists(record["namespace"])
    assert leftover_processes(state) == []
