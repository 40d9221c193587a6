"""Real boots of a real Linux 6.1 i386 bzImage under QEMU (TCG); the 2.4
boots are in test_linux24.py, on kernels built from the test archive.

The 6.1 kernel is the run's pentium build (`kernel_61`, tests/conftest.py).
Console logs stay in pytest's tmp dir; failures print their path."""
from pathlib import Path

import pytest

from initrd.build import compile_init, make_cpio_initrd
from kernels import matrix
from lab.boot import qemu as boot_module
from lab.boot.qemu import BootCase, boot_once, run_matrix
from lab.boot.hostile import make_hostile_bzimage, read_initrd_addr_max
from lab.boot.report import write_reports
from rootfs.pxetree import PxeNode, make_tftp_tree
from tests.conftest import qemu_processes

pytestmark = pytest.mark.e2e

# 2.4's max_low_pfn and 6.1's lowmem on i386: an initrd above it is "high".
LOWMEM_END = 0x38000000
MB = 1024


@pytest.fixture(scope="module")
def initrd_61(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("initrd")
    return make_cpio_initrd(work / "initrd.cpio", compile_init(work))


@pytest.fixture
def logs(tmp_path) -> Path:
    return tmp_path / "logs"


def _boot(kernel, initrd, logs, **kwargs):
    kwargs.setdefault("cpu", "pentium")
    kwargs.setdefault("nic", "e1000")
    kwargs.setdefault("mem_mb", 512)
    kwargs.setdefault("timeout", 90)
    name = (f"{kwargs.get('variant', 'test')}-{kwargs.get('path', 'pxe')}-{kwargs.get('firmware', 'ipxe')}-"
            f"{kwargs['nic']}-{kwargs['mem_mb']}")
    result = boot_once(kernel, initrd, log_path=logs / f"{name}.log", **kwargs)
    print(f"{result.name}: {result.verdict} {result.seconds}s log={result.log_path}")
    return result


def _explain(result) -> str:
    return f"{result.verdict} {result.kind}: {result.console_line} (log {result.log_path})"


def test_direct_boot_reaches_the_marker(kernel_61, initrd_61, logs):
    result = _boot(kernel_61, initrd_61, logs, path="direct")
    assert result.passed, _explain(result)
    assert result.kernel_version.startswith("6.1.")
    assert 400 * MB < result.mem_total_kb <= 512 * MB
    assert result.interfaces == ["lo", "eth0"] and result.drivers == {"eth0": "e1000"}
    assert result.mosix == "no Mosix"
    assert result.log_path.is_file() and "LTSP-MOSIX-BOOT-OK" in result.log_path.read_text()


@pytest.mark.parametrize("mem_mb,firmware", [(512, "rom"), (512, "ipxe"), (3584, "ipxe")])
def test_pxe_boot_with_e1000(kernel_61, initrd_61, logs, mem_mb, firmware):
    """Both firmwares reach the same pxelinux, per-MAC entry and kernel."""
    result = _boot(kernel_61, initrd_61, logs, path="pxe", mem_mb=mem_mb, firmware=firmware)
    assert result.passed, _explain(result)
    assert result.route == f"pxe/{firmware}"
    log = result.log_path.read_text()
    assert "PXELINUX" in log and "Loading lts/linux-6.1/vmlinuz-test... ok" in log
    if mem_mb == 3584:
        # The pc machine keeps 3 GB below 4 GB at this size; all of it is
        # visible to a HIGHMEM4G kernel.
        assert result.mem_total_kb > 2900 * MB, _explain(result)
    assert result.interfaces == ["lo", "eth0"]


@pytest.mark.parametrize("path", ["direct", "pxe"])
def test_hostile_loader_initrd_is_placed_high_and_6_1_relocates_it(
        kernel_61, initrd_61, logs, tmp_path, path):
    hostile = make_hostile_bzimage(kernel_61, tmp_path / "bzImage-hostile")
    assert read_initrd_addr_max(hostile.read_bytes()) == 0xFFFFFFFF
    result = _boot(hostile, initrd_61, logs, path=path, mem_mb=3584)
    assert result.passed, _explain(result)
    assert result.initrd_start is not None and result.initrd_start >= LOWMEM_END, \
        f"initrd at {result.initrd_start:#x}: the loader did not place it high"
    assert result.initrd_moved_to is not None and result.initrd_moved_to < LOWMEM_END, \
        "6.1 should have copied the initrd into low memory (relocate_initrd)"


@pytest.mark.parametrize("nic,driver", [("rtl8139", "8139cp"), ("ne2k_pci", "ne2k-pci")])
def test_pxe_boot_with_other_nics(kernel_61, initrd_61, logs, nic, driver):
    result = _boot(kernel_61, initrd_61, logs, path="pxe", nic=nic)
    assert result.passed, _explain(result)
    assert result.drivers == {"eth0": driver}


def test_shared_tftp_tree_boots_each_node_its_own_kernel(kernel_61, initrd_61, logs, tmp_path):
    """Two nodes in one LTSP-style tree: pxelinux must pick the 01-<mac> file
    of the booting node; an unknown MAC must be refused, not booted."""
    append = matrix.load_line("linux-6.1").kernel_append
    nodes = [PxeNode(f"52:54:00:00:00:0{n}", kernel_61, initrd_61, f"{append} ltsp_node={n}",
                     variant=f"node{n}") for n in (1, 2)]
    root = make_tftp_tree(tmp_path / "tftp", nodes)
    second = _boot(kernel_61, initrd_61, logs, path="pxe", tftp_root=root,
                   mac="52:54:00:00:00:02", mem_mb=256, variant="node2")
    assert second.passed, _explain(second)
    log = second.log_path.read_text()
    assert "Loading lts/linux-6.1/vmlinuz-node2... ok" in log and "ltsp_node=2" in log
    stranger = _boot(kernel_61, initrd_61, logs, path="pxe", tftp_root=root,
                     mac="52:54:00:00:00:09", mem_mb=256, variant="stranger")
    assert (stranger.verdict, stranger.kind) == ("fail", "pxe-no-entry"), _explain(stranger)


def test_no_qemu_survives_a_timeout(kernel_61, initrd_61, logs):
    # PXE takes seconds before the kernel runs, so 1 s is a sure timeout.
    result = _boot(kernel_61, initrd_61, logs, path="pxe", timeout=1, variant="timeout-probe")
    assert (result.verdict, result.kind) == ("hang", "timeout")
    assert qemu_processes(f"ltsp-mosix-{result.name}") == []


def test_no_qemu_survives_an_interrupt(kernel_61, initrd_61, logs, monkeypatch):
    seen = {}

    def interrupted_watch(child, **kwargs):
        seen["pid"] = child.pid
        assert child.isalive()
        raise KeyboardInterrupt

    monkeypatch.setattr(boot_module, "watch_stream", interrupted_watch)
    with pytest.raises(KeyboardInterrupt):
        _boot(kernel_61, initrd_61, logs, path="direct")
    assert not Path(f"/proc/{seen['pid']}").exists(), "QEMU was not killed and reaped"


def test_matrix_of_direct_boots_with_reports(kernel_61, initrd_61, tmp_path, capsys):
    cases = [BootCase(kernel_61, initrd_61, "pentium", "pentium", "e1000", mem, path="direct")
             for mem in (256, 1024)]
    results = run_matrix(cases, log_dir=tmp_path / "logs", jobs=1)
    assert [r.verdict for r in results] == ["pass", "pass"], [_explain(r) for r in results]
    out = capsys.readouterr().out
    assert "[1/2] linux-6.1-pentium-e1000-256M-direct: pass" in out
    assert "[2/2] linux-6.1-pentium-e1000-1024M-direct: pass" in out
    written = write_reports(results, tmp_path)
    assert "2 boots: 2 pass, 0 fail, 0 hang" in written["table"].read_text()


def test_an_infrastructure_shaped_failure_is_retried_once_and_named(kernel_61, initrd_61, tmp_path):
    """A boot that times out before the kernel's first line (here: 1 s for a
    PXE boot) is tried again; twice is an infra-error, both tries kept."""
    case = BootCase(kernel_61, initrd_61, "pentium", "pentium", "e1000", 256, path="pxe", timeout=1)
    (result,) = run_matrix([case], log_dir=tmp_path / "logs", jobs=1)
    assert result.verdict == "infra-error" and result.kind == "timeout"
    assert [t["verdict"] for t in result.tries] == ["hang"]
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {f"{case.name}.log", f"{case.name}.try2.log"}
    written = write_reports([result], tmp_path)
    assert "<error" in written["junit"].read_text() and "try 1: hang timeout" in written["junit"].read_text()
    assert "1 boots: 0 pass, 0 fail, 0 hang, 1 infra-error" in written["table"].read_text()
