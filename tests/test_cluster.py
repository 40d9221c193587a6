"""configs/cluster.toml and its validation: every broken cluster file in
tests/fixtures/clusters/ fails with the node and the field at fault."""
import re
from ipaddress import IPv4Address

import pytest

from common.errors import UserError
from kernels import matrix
from rootfs.cards import default_nic_profile, profiles_for_card
from rootfs.cluster import default_cluster_path, load_cluster
from tests.conftest import FIXTURES

BROKEN = FIXTURES / "clusters"


def test_shipped_cluster_loads():
    cluster = load_cluster()
    assert cluster.source == default_cluster_path()
    assert cluster.line_name == "openmosix-2"
    assert str(cluster.subnet) == "192.168.67.0/24" and cluster.server == IPv4Address("192.168.67.1")
    assert cluster.server in cluster.subnet
    assert len(cluster.nodes) == 5
    i386 = {cpu for cpu in matrix.cpu_names() if matrix.cpu_spec(cpu).arch == "i386"}
    assert {n.cpu for n in cluster.nodes} == i386      # every CPU of the line once at least
    assert any(n.memory_mb > 1024 for n in cluster.nodes)
    variants = {n.name: n.variant_name for n in cluster.nodes}
    assert variants == {"node01": "pentium-3c590", "node02": "pentium_smp-epic100",
                        "node03": "athlon", "node04": "p4", "node05": "pentium_smp"}
    assert all(n.variant.line == "openmosix-2" for n in cluster.nodes)
    assert cluster.variant_names() == sorted(set(variants.values()))


def test_nic_profile_defaults_follow_the_card():
    assert default_nic_profile("3c590") == "3c590"
    assert default_nic_profile("epic100") == "epic100"
    for qemu_card in ("e1000", "rtl8139", "ne2k_pci"):
        assert default_nic_profile(qemu_card) == "all"


def test_all_profile_fits_every_card_and_one_driver_profiles_only_theirs():
    for card in matrix.cards():
        assert "all" in profiles_for_card(card)
    assert profiles_for_card("3c590") == ["all", "3c590"]
    assert profiles_for_card("epic100") == ["all", "epic100"]
    assert profiles_for_card("e1000") == ["all"]


def test_cluster_moves_to_another_line_with_the_same_variants():
    cluster = load_cluster()
    modern = cluster.for_line("linux-6.1")
    assert modern.line_name == "linux-6.1" and modern.line.kernel == "6.1"
    assert [n.variant_name for n in modern.nodes] == [n.variant_name for n in cluster.nodes]
    assert {n.variant.line for n in modern.nodes} == {"linux-6.1"}


# file -> (node, field, what the message says about it); a duplicate name
# is told apart by its position: "node 'alpha' (#2): field 'name': ..."
CASES = {
    "duplicate_mac.toml": ("beta", "mac", "00:60:08:aa:00:01 is already used by node 'alpha'"),
    "duplicate_ip.toml": ("beta", "ip", "192.168.67.10 is already used by node 'alpha'"),
    "duplicate_name.toml": ("alpha", "name", "node #1 already has this name"),
    "ip_outside_subnet.toml": ("gamma", "ip", "192.168.68.12 is outside the subnet 192.168.67.0/24"),
    "ip_is_server.toml": ("gamma", "ip", "192.168.67.1 is the server's address"),
    "ip_is_broadcast.toml": ("gamma", "ip", "is the broadcast address"),
    "malformed_ip.toml": ("gamma", "ip", "'192.168.67.300' is not an IPv4 address"),
    "malformed_mac.toml": ("delta", "mac", "bad MAC address '00:60:08:zz:00:04'"),
    "unknown_cpu.toml": ("delta", "cpu", "unknown CPU 'k6'; valid CPUs: athlon, p4, pentium, pentium_smp"),
    "nic_profile_mismatch.toml": ("epsilon", "nic_profile",
                                  "profile 'epic100' has no driver for the node's 3c590 card"),
    "unknown_card.toml": ("epsilon", "nic", "unknown network card 'tulip'"),
    "unknown_field.toml": ("epsilon", "memory", "unknown field"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_cluster_names_node_and_field(name):
    node, field, why = CASES[name]
    with pytest.raises(UserError) as caught:
        load_cluster(BROKEN / name)
    message = str(caught.value)
    assert re.search(rf"node '{re.escape(node)}'( \(#\d+\))?: field '{field}': ", message), message
    assert why in message, message
    assert str(BROKEN / name) in message


def test_every_fixture_has_a_case():
    assert sorted(p.name for p in BROKEN.glob("*.toml")) == sorted(CASES | {"unknown_line.toml": None})


def test_unknown_line_lists_valid_lines():
    with pytest.raises(UserError, match=r"\[cluster\] field 'line': unknown line 'openmosix-3'; "
                                        r"valid lines: linux-2.4.22, linux-6.1, linux-6.1-x86_64, mosix-1.7.0, "
                                        r"openmosix-2"):
        load_cluster(BROKEN / "unknown_line.toml")


def test_profile_mismatch_says_which_profiles_fit():
    with pytest.raises(UserError, match="profiles that fit: all, 3c590"):
        load_cluster(BROKEN / "nic_profile_mismatch.toml")


def _write_cluster(tmp_path, nodes: str, header_extra: str = "") -> object:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "t"\nline = "openmosix-2"\nsubnet = "10.0.0.0/24"\n'
                    f'server = "10.0.0.1"\nnfs_root = "/opt/ltsp/i386"\n{header_extra}\n{nodes}')
    return path


def test_every_bad_node_is_reported_at_once(tmp_path):
    path = _write_cluster(tmp_path, """
[[nodes]]
name = "a"
mac = "nope"
ip = "10.0.0.2"
cpu = "pentium"
nic = "e1000"
memory_mb = 64

[[nodes]]
name = "b"
mac = "52:54:00:00:00:03"
ip = "10.0.0.3"
cpu = "pentium"
nic = "e1000"
memory_mb = 8
""")
    with pytest.raises(UserError) as caught:
        load_cluster(path)
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "node 'a': field 'mac'" in message and "node 'b': field 'memory_mb'" in message


@pytest.mark.parametrize("header, field", [
    ('subnet = "10.0.0.1/24"', "subnet"),            # host bits set
    ('nfs_root = "opt/ltsp"', "nfs_root"),          # relative
    ('nfs_root = "/opt/ltsp/i386\\";$(reboot)#"', "nfs_root"),     # a quote and a command
    ('nfs_root = "/opt/ltsp/../../etc"', "nfs_root"),
    ('nfs_root = "/opt/ltsp/i386\\nenable-ra"', "nfs_root"),     # a newline into dnsmasq.conf
    ("nfs_root = \"/opt/ltsp/i'386\"", "nfs_root"),
    ('screen = "kde"', "screen"),
])
def test_bad_cluster_header_names_the_field(tmp_path, header, field):
    key = header.split(" ")[0]
    text = ('[cluster]\nname = "t"\nline = "openmosix-2"\nsubnet = "10.0.0.0/24"\n'
            'server = "10.0.0.1"\nnfs_root = "/opt/ltsp/i386"\n')
    lines = [line for line in text.splitlines() if not line.startswith(key + " ")] + [header]
    path = tmp_path / "cluster.toml"
    path.write_text("\n".join(lines) + '\n\n[[nodes]]\nname = "a"\nmac = "52:54:00:00:00:02"\n'
                    'ip = "10.0.0.2"\ncpu = "pentium"\nnic = "e1000"\nmemory_mb = 64\n')
    with pytest.raises(UserError, match=rf"\[cluster\] field '{field}'"):
        load_cluster(path)


def test_server_outside_subnet_is_refused(tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "t"\nline = "openmosix-2"\nsubnet = "10.0.0.0/24"\n'
                    'server = "10.0.1.1"\nnfs_root = "/opt/ltsp/i386"\n')
    with pytest.raises(UserError, match=r"\[cluster\] field 'server': 10.0.1.1 is outside the subnet"):
        load_cluster(path)


def test_missing_cluster_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cluster file missing"):
        load_cluster(tmp_path / "none.toml")


def test_doit_refuses_a_hostile_cluster_file_before_writing_anything(tmp_path):
    """cluster-test as typed, with nfs_root carrying a quote and a command:
    exit 3 naming the file and field, and no generated file anywhere."""
    from tests.conftest import project_env, run_doit
    path = tmp_path / "hostile.toml"
    shipped = default_cluster_path().read_text()
    path.write_text(re.sub(r'(?m)^nfs_root = .*$', 'nfs_root = "/opt/ltsp/i386\\";$(reboot)#"', shipped, count=1))
    build = tmp_path / "build"
    result = run_doit("cluster-test", f"cluster={path}", check=False,
                      env=project_env(LTSP_MOSIX_BUILD_DIR=str(build)))
    said = result.stdout + result.stderr
    assert result.returncode == 3, said[-2000:]
    assert f"{path}: [cluster] field 'nfs_root'" in said and "Traceback" not in said
    written = [p for p in build.rglob("*") if p.name in ("dnsmasq.conf", "ganesha.conf") or p.parent.name == "pxelinux.cfg"]
    assert written == []
