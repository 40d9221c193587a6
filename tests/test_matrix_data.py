"""The whole matrix is data: a new CPU variant and a new NIC profile, added
to a copied configs folder with their data files and no Python change, go
through doit config and check, the boot plan, QEMU's command line, the
package names and the cluster description.  A missing field is an error
naming the file and the field."""
import pytest

from common.errors import UserError
from kernels import matrix
from lab.boot.variant import boot_cases
from lab.boot.machine import machine_for
from release.package import kernel_package_name
from rootfs.cards import profiles_for_card
from rootfs.cluster import load_cluster
from tests.conftest import run_doit

P2_FRAGMENT = "# Pentium II (a new CPU variant of the tests).\nCONFIG_M686=y\n# CONFIG_SMP is not set\n"
P2_DATA = 'package_name = "P2"\narch = "i386"\nsmp = 1\n\n[qemu]\ncpu = "pentium2"\nwhy = "QEMU\'s pentium2 is a P6"\n'
RTL_FRAGMENT = ("# Only the RealTek 8139 drivers.\n# CONFIG_VORTEX is not set\n# CONFIG_EPIC100 is not set\n"
                "# CONFIG_NE2K_PCI is not set\nCONFIG_8139TOO=y\nCONFIG_8139CP=y\n# CONFIG_E1000 is not set\n")
RTL_DATA = 'boot_nics = ["rtl8139"]\n'


@pytest.fixture
def grown(fake24, isolated):
    """fake24 with a p2 CPU and an rtl8139 NIC profile, as data only."""
    configs = isolated / "configs"
    (configs / "cpu" / "p2.config").write_text(P2_FRAGMENT)
    (configs / "cpu" / "p2.toml").write_text(P2_DATA)
    (configs / "nic" / "rtl8139.config").write_text(RTL_FRAGMENT)
    (configs / "nic" / "rtl8139.toml").write_text(RTL_DATA)
    return fake24(), configs


def test_new_variant_configures_and_passes_check_through_doit(grown):
    line, _ = grown
    assert "p2-rtl8139" in [v.name for v in line.variants()]
    run_doit("line=fake24", "config:p2-rtl8139")
    checked = run_doit("line=fake24", "check")
    assert f"{len(line.variants())} variants share" in checked.stdout


def test_new_variant_has_a_boot_plan_a_qemu_cpu_and_a_package_name(grown):
    line, _ = grown
    variant = line.variant("p2-rtl8139")
    cases = boot_cases(line, variant)
    assert [(c.cpu, c.nic, c.mem_mb) for c in cases] == [("p2", "rtl8139", mem) for mem in (512, 2048, 3584)]
    argv = machine_for("i386", cpu="p2", nic="rtl8139", mem_mb=512).common_args("direct")
    assert argv[argv.index("-cpu") + 1] == "pentium2"
    assert kernel_package_name(line, variant, "2.4.99") == "ltsp_fake_kernel_P2_rtl8139_2.4.99.tar.gz"


def test_new_variant_in_a_cluster_description(grown, tmp_path):
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "t"\nline = "fake24"\nsubnet = "10.0.0.0/24"\nserver = "10.0.0.1"\n'
                    'nfs_root = "/opt/ltsp/i386"\n\n[[nodes]]\nname = "n1"\nmac = "52:54:00:00:00:10"\n'
                    'ip = "10.0.0.10"\ncpu = "p2"\nnic = "rtl8139"\nmemory_mb = 64\n')
    cluster = load_cluster(path)
    assert [(n.cpu, n.nic_profile, n.variant_name) for n in cluster.nodes] == [("p2", "rtl8139", "p2-rtl8139")]
    assert profiles_for_card("rtl8139") == ["all", "rtl8139"]


@pytest.mark.parametrize("folder,name,data,field", [
    ("cpu", "p2.toml", P2_DATA.replace("smp = 1\n", ""), "'smp'"),
    ("cpu", "p2.toml", P2_DATA.replace('cpu = "pentium2"\n', ""), "'qemu.cpu'"),
    ("cpu", "p2.toml", P2_DATA.replace("smp = 1", 'smp = "one"'), "'smp' must be an integer"),
    ("nic", "rtl8139.toml", "", "'boot_nics'"),
    ("nic", "rtl8139.toml", 'boot_nics = ["3c905"]\n', "'boot_nics' must list cards of"),
])
def test_a_missing_or_bad_field_names_the_file_and_the_field(grown, folder, name, data, field):
    _, configs = grown
    (configs / folder / name).write_text(data)
    with pytest.raises(UserError, match=rf"{name}: .*field {field}"):
        if folder == "cpu":
            matrix.cpu_spec("p2")
        else:
            matrix.nic_profile("rtl8139")


def test_a_fragment_without_its_data_file_is_named(grown):
    _, configs = grown
    (configs / "cpu" / "p2.toml").unlink()
    with pytest.raises(UserError, match=r"cpu/p2.toml is missing: p2.config needs its data file beside it"):
        matrix.cpu_spec("p2")


def test_a_line_without_a_boot_plan_is_refused(isolated):
    toml = isolated / "configs" / "lines" / "linux-6.1.toml"
    text = toml.read_text()
    toml.write_text(text.replace("extra_nics_at_mb = 512", "extra_nics_at_mb = 1024"))
    with pytest.raises(UserError, match=r"linux-6.1.toml: field 'boot.extra_nics_at_mb' = 1024 is not one of"):
        matrix.load_line("linux-6.1")


def test_a_card_that_is_not_a_table_is_named(isolated):
    cards = isolated / "configs" / "cards.toml"
    cards.write_text(cards.read_text().replace(
        "[cards.ne2k_pci]", "[cards]\nisa_ne2000 = \"yes\"\n\n[cards.ne2k_pci]"))
    with pytest.raises(UserError, match=r"cards.toml: \[cards.isa_ne2000\] must be a table"):
        matrix.cards()


# -- facts that were code: each new value is data only ------------------------------------

def test_a_new_initrd_format_command_line_needs_no_python(isolated):
    from lab.boot.qemu import kernel_append
    configs = isolated / "configs"
    formats = configs / "initrd-formats.toml"
    formats.write_text(formats.read_text() + '\n[squashfs]\nappend = "console=ttyS0 root=/dev/ram0 rootfstype=squashfs"\n')
    toml = configs / "lines" / "linux-6.1.toml"
    toml.write_text(toml.read_text().replace('initrd_format = "cpio"', 'initrd_format = "squashfs"'))
    assert kernel_append(matrix.load_line("linux-6.1")) == "console=ttyS0 root=/dev/ram0 rootfstype=squashfs"
    toml.write_text(toml.read_text().replace('initrd_format = "squashfs"', 'initrd_format = "jffs2"'))
    with pytest.raises(UserError, match="initrd_format 'jffs2' is not a table of .*initrd-formats.toml"):
        matrix.load_line("linux-6.1")


def test_new_nfs_options_and_map_file_need_no_python(isolated):
    from rootfs import maps, tftp
    toml = isolated / "configs" / "lines" / "openmosix-2.toml"
    toml.write_text(toml.read_text().replace('nfs_options = "v3,udp"', 'nfs_options = "v3,tcp,rsize=8192"')
                    .replace('map_file = "hpc.map"', 'map_file = "cluster.map"'))
    assert maps.map_path_on_node("openmosix-2") == "/etc/cluster.map"
    cluster = load_cluster(isolated / "configs" / "cluster.toml")
    assert cluster.line_name == "openmosix-2"
    assert tftp.node_append(cluster).endswith(f"nfsroot={cluster.server}:{cluster.nfs_root},v3,tcp,rsize=8192")
    toml.write_text(toml.read_text().replace('nfs_options = "v3,tcp,rsize=8192"', 'nfs_options = "v3;reboot"'))
    with pytest.raises(UserError, match="nfs_options 'v3;reboot'"):
        matrix.load_line("openmosix-2")


def test_a_new_architecture_machine_needs_no_python(isolated):
    arches = isolated / "configs" / "arches.toml"
    arches.write_text(arches.read_text().replace('machine = "pc"', 'machine = "q35"', 1))
    machine = machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512)
    assert (machine.binary, machine.machine_type) == ("qemu-system-i386", "q35")
    with pytest.raises(UserError, match="unknown architecture 'arm'.*configs/arches.toml"):
        machine_for("arm", cpu="pentium", nic="e1000", mem_mb=512)
