"""QEMU command lines per CPU variant, NIC, memory size and boot path, and
the validation that happens before anything runs."""
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from common.errors import InfraError, UserError
from common.mac import normalise_mac
from lab.boot import machine as machine_module
from lab.boot.qemu import BootCase, boot_once, run_matrix
from lab.boot.machine import (IPXE_LKRN, IPXE_USER_NET_SCRIPT, boot_nic_for, cpu_models, kernel_only_nics,
                          machine_for, nic_models)

MAC = "52:54:00:aa:bb:01"


@pytest.fixture
def files(tmp_path):
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd.cpio"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "pxelinux.0").write_bytes(b"p")
    return kernel, initrd, tftp


def _value(argv, option):
    return argv[argv.index(option) + 1]


@pytest.mark.parametrize("variant,qemu_cpu,smp", [
    ("pentium", "pentium", "1,sockets=1,cores=1,threads=1"),
    ("pentium_smp", "pentium", "2,sockets=2,cores=1,threads=1"),
    ("athlon", "athlon", "1,sockets=1,cores=1,threads=1"),
    ("p4", cpu_models()["p4"].qemu_cpu, "1,sockets=1,cores=1,threads=1"),
])
def test_cpu_variants(files, variant, qemu_cpu, smp):
    kernel, initrd, _ = files
    argv = machine_for(cpu=variant, nic="e1000", mem_mb=512).direct_boot(kernel, initrd, "console=ttyS0")
    assert _value(argv, "-cpu") == qemu_cpu
    assert _value(argv, "-smp") == smp


def test_pentium_gets_fxsr_for_the_pxe_firmware_only(files):
    kernel, initrd, tftp = files
    m = machine_for("i386", cpu="pentium_smp", nic="e1000", mem_mb=512)
    assert _value(m.pxe_boot(tftp), "-cpu") == "pentium,+fxsr"
    assert _value(m.direct_boot(kernel, initrd, ""), "-cpu") == "pentium"


def test_p4_model_is_a_pentium3_with_sse2_and_netburst_family():
    cpu = cpu_models()["p4"].qemu_cpu
    assert cpu.startswith("pentium3,") and "+sse2" in cpu and "family=15" in cpu


@pytest.mark.parametrize("nic", sorted(nic_models()))
@pytest.mark.parametrize("mem", [128, 512, 3584])
def test_pxe_command_line_through_the_nic_rom(files, nic, mem):
    _, _, tftp = files
    argv = machine_for("i386", cpu="pentium", nic=nic, mem_mb=mem, mac=MAC).pxe_boot(tftp, firmware="rom")
    assert argv[0].endswith("qemu-system-i386")
    assert _value(argv, "-m") == str(mem)
    assert _value(argv, "-netdev") == f"user,id=n0,restrict=on,tftp={tftp.resolve()},bootfile=pxelinux.0"
    assert _value(argv, "-device") == f"{nic},netdev=n0,mac={MAC}"
    assert _value(argv, "-boot") == "n"
    assert "-kernel" not in argv


@pytest.mark.parametrize("nic", sorted(nic_models()))
def test_pxe_command_line_through_ipxe_as_the_kernel(files, nic):
    """The default firmware: ipxe.lkrn is QEMU's kernel and its script
    fetches the same pxelinux.0 over the same user network; the NIC carries
    no ROM, so only one iPXE runs."""
    _, _, tftp = files
    argv = machine_for("i386", cpu="pentium", nic=nic, mem_mb=512, mac=MAC).pxe_boot(tftp)
    assert _value(argv, "-netdev") == f"user,id=n0,restrict=on,tftp={tftp.resolve()},bootfile=pxelinux.0"
    assert _value(argv, "-device") == f"{nic},netdev=n0,mac={MAC},romfile="
    assert _value(argv, "-kernel") == str(IPXE_LKRN)
    assert _value(argv, "-append") == IPXE_USER_NET_SCRIPT
    assert "chain tftp://10.0.2.2/pxelinux.0" in IPXE_USER_NET_SCRIPT
    assert "-boot" not in argv and "-initrd" not in argv
    assert _value(argv, "-cpu") == "pentium,+fxsr"       # the firmware needs it, as the ROM does


def test_unknown_firmware_is_refused_by_name(files):
    _, _, tftp = files
    with pytest.raises(UserError, match="unknown PXE firmware 'uefi'"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512).pxe_boot(tftp, firmware="uefi")


def test_missing_ipxe_lkrn_names_its_package(files, monkeypatch):
    _, _, tftp = files
    monkeypatch.setattr(machine_module, "IPXE_LKRN", Path("/nonexistent/ipxe.lkrn"))
    with pytest.raises(InfraError, match="install the Debian package `ipxe`"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512).pxe_boot(tftp)


def test_direct_command_line(files):
    kernel, initrd, _ = files
    argv = machine_for("i386", cpu="athlon", nic="rtl8139", mem_mb=256).direct_boot(kernel, initrd, "console=ttyS0,115200 panic=1")
    assert _value(argv, "-kernel") == str(kernel.resolve())
    assert _value(argv, "-initrd") == str(initrd.resolve())
    assert _value(argv, "-append") == "console=ttyS0,115200 panic=1"
    assert _value(argv, "-device").startswith("rtl8139,netdev=n0,")
    assert "-boot" not in argv


def test_relative_paths_become_absolute(files, monkeypatch):
    """QEMU runs in the boot's temp dir: a relative -kernel would not be found."""
    kernel, initrd, tftp = files
    monkeypatch.chdir(kernel.parent)
    m = machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512)
    argv = m.direct_boot(Path(kernel.name), Path(initrd.name), "")
    assert _value(argv, "-kernel") == str(kernel.resolve())
    assert _value(argv, "-initrd") == str(initrd.resolve())
    assert f"tftp={tftp.resolve()}," in _value(m.pxe_boot(Path("tftp")), "-netdev")


def test_every_command_is_tcg_serial_and_no_reboot(files):
    kernel, initrd, tftp = files
    m = machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512, name="ltsp-mosix-x")
    for argv in (m.direct_boot(kernel, initrd, "console=ttyS0"), m.pxe_boot(tftp)):
        assert _value(argv, "-accel") == "tcg"
        assert _value(argv, "-serial") == "stdio"
        assert _value(argv, "-display") == "none"
        assert _value(argv, "-monitor") == "none"
        assert _value(argv, "-machine") == "pc"
        assert _value(argv, "-name") == "ltsp-mosix-x"
        assert "-no-reboot" in argv and "-nodefaults" in argv


def test_missing_kernel_is_a_user_error_naming_it(files):
    _, initrd, _ = files
    with pytest.raises(UserError, match="no-such-bzImage"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512).direct_boot(
            initrd.parent / "no-such-bzImage", initrd, "")


def test_missing_initrd_is_a_user_error_naming_it(files):
    kernel, _, _ = files
    with pytest.raises(UserError, match="missing.cpio"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512).direct_boot(
            kernel, kernel.parent / "missing.cpio", "")


def test_tftp_root_without_pxelinux_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="pxelinux.0"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512).pxe_boot(tmp_path)


def test_unknown_nic_lists_the_valid_ones():
    with pytest.raises(UserError) as error:
        machine_for("i386", cpu="pentium", nic="3c905", mem_mb=512)
    for nic in nic_models():
        assert nic in str(error.value)


def test_unknown_cpu_lists_the_valid_ones():
    with pytest.raises(UserError, match="athlon, haswell, k8, p4, pentium, pentium_smp"):
        machine_for("i386", cpu="k6", nic="e1000", mem_mb=512)


@pytest.mark.parametrize("mem", [0, 8, 4096, "512"])
def test_memory_out_of_range(mem):
    with pytest.raises(UserError, match="memory"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=mem)


def test_missing_qemu_names_the_debian_package(files, monkeypatch):
    kernel, initrd, _ = files
    monkeypatch.setattr(machine_module.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match="qemu-system-x86"):
        machine_for("i386", cpu="pentium", nic="e1000", mem_mb=512).direct_boot(kernel, initrd, "")


def test_mac_rules():
    assert normalise_mac("52-54-00-AA-BB-01") == MAC
    for bad in ("52:54:00:aa:bb", "zz:54:00:aa:bb:01", "53:54:00:aa:bb:01"):
        with pytest.raises(UserError):
            normalise_mac(bad)


def test_kernel_only_nics_boot_with_e1000_firmware():
    for nic in kernel_only_nics():
        model, note = boot_nic_for(nic)
        assert model == "e1000" and "driver present, no card to bind" in note
    assert boot_nic_for("ne2k_pci") == ("ne2k_pci", None)
    with pytest.raises(UserError, match="3c590"):
        boot_nic_for("tulip")


def test_unknown_arch():
    with pytest.raises(UserError, match="i386"):
        machine_for("sparc", cpu="pentium", nic="e1000", mem_mb=64)


@pytest.mark.skipif(shutil.which("qemu-system-i386") is None, reason="qemu-system-x86 not installed")
def test_qemu_accepts_every_cpu_model_and_nic():
    """Start each CPU/NIC paused and quit at once: catches a model name or
    property this QEMU does not know, without booting anything."""
    for cpu, path in [(c, p) for c in cpu_models().values() for p in ("direct", "pxe")]:
        for nic in nic_models():
            argv = ["qemu-system-i386", "-accel", "tcg", "-cpu", cpu.qemu_cpu_for(path),
                    "-smp", cpu.smp_arg, "-nodefaults", "-display", "none", "-S",
                    "-netdev", "user,id=n0,restrict=on", "-device", f"{nic},netdev=n0",
                    "-monitor", "stdio"]
            proc = subprocess.run(argv, input="quit\n", capture_output=True, text=True, timeout=30)
            assert proc.returncode == 0, (cpu.variant, nic, proc.stderr)


# -- running boots without QEMU: a fake binary plays recorded consoles -------

CONSOLES = Path(__file__).parent / "fixtures" / "consoles"


@pytest.fixture
def fake_qemu(isolated, tmp_path):
    """A stand-in for qemu-system-i386: -m 256 hangs (prints a stuck boot,
    then sleeps), anything else prints a good 6.1 boot and exits."""
    script = tmp_path / "fake-qemu-system-i386"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in\n'
        f'  *" -m 256 "*) cat "{CONSOLES / "hang-6.1.log"}"; exec sleep 600 ;;\n'
        f'  *) exec cat "{CONSOLES / "good-6.1-direct.log"}" ;;\n'
        "esac\n")
    script.chmod(0o755)
    arches = isolated / "configs" / "arches.toml"       # the binary is data: no Python changes
    arches.write_text(arches.read_text().replace('binary = "qemu-system-i386"', f'binary = "{script}"'))
    return script


def test_run_matrix_in_parallel_kills_the_hung_boot(files, fake_qemu, tmp_path):
    kernel, initrd, _ = files
    cases = [BootCase(kernel, initrd, "pentium", "pentium", "e1000", mem, path="direct", timeout=1.5)
             for mem in (512, 256, 1024)]
    progress = io.StringIO()
    results = run_matrix(cases, log_dir=tmp_path / "logs", jobs=2, stream=progress)
    assert [(r.mem_mb, r.verdict) for r in results] == [(512, "pass"), (256, "hang"), (1024, "pass")]
    assert results[0].interfaces == ["lo", "eth0"] and results[0].drivers == {"eth0": "e1000"}
    assert len(progress.getvalue().splitlines()) == 3
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == sorted(f"{c.name}.log" for c in cases)
    leftovers = subprocess.run(["pgrep", "-f", str(fake_qemu)], capture_output=True, text=True).stdout
    assert leftovers == "", "a fake QEMU outlived its boot"


def test_matrix_is_validated_before_the_first_boot(files, fake_qemu, tmp_path):
    kernel, initrd, _ = files
    good = BootCase(kernel, initrd, "pentium", "pentium", "e1000", 512, path="direct")
    bad = BootCase(kernel, tmp_path / "no-initrd", "athlon", "athlon", "e1000", 512, path="direct")
    with pytest.raises(UserError, match="no-initrd"):
        run_matrix([good, bad], log_dir=tmp_path / "logs")
    assert not (tmp_path / "logs").exists(), "nothing booted"
    with pytest.raises(UserError, match="duplicate"):
        run_matrix([good, good], log_dir=tmp_path / "logs")


def test_missing_nic_driver_fails_a_nic_boot(files, fake_qemu, tmp_path, monkeypatch):
    kernel, initrd, _ = files
    fake_qemu.write_text(f'#!/bin/sh\nexec sed s/"lo eth0"/lo/ "{CONSOLES / "good-6.1-direct.log"}"\n')
    result = boot_once(kernel, initrd, cpu="pentium", nic="rtl8139", mem_mb=512, path="direct",
                       log_path=tmp_path / "x.log")
    assert (result.verdict, result.kind) == ("fail", "no-interface")
    kernel_only = boot_once(kernel, initrd, cpu="pentium", nic="3c590", mem_mb=512, path="direct",
                            log_path=tmp_path / "y.log")
    assert kernel_only.verdict == "pass" and kernel_only.boot_nic == "e1000"
    assert any("driver present, no card to bind" in note for note in kernel_only.notes)


def test_smp_variant_that_starts_one_cpu_fails(files, fake_qemu, tmp_path):
    kernel, initrd, _ = files       # the fake console says "ltsp-mosix: cpus: 1"
    result = boot_once(kernel, initrd, cpu="pentium_smp", nic="e1000", mem_mb=512,
                       path="direct", log_path=tmp_path / "smp.log")
    assert (result.verdict, result.kind, result.cpus) == ("fail", "cpus-missing", 1)
    assert boot_once(kernel, initrd, cpu="pentium", nic="e1000", mem_mb=512, path="direct",
                     log_path=tmp_path / "up.log").verdict == "pass"
