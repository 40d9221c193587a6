"""The LTSP-style TFTP tree and the hostile-loader bzImage."""
import struct

import pytest

from common.errors import InfraError, UserError
from lab.boot.hostile import INITRD_ADDR_MAX_OFFSET, make_hostile_bzimage, read_initrd_addr_max
from lab.boot.patterns import classify_line
from rootfs import pxetree as pxe
from rootfs.pxetree import PxeNode, make_tftp_tree


@pytest.fixture
def two_nodes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("bz-pentium", "bz-athlon", "initrd.cpio"):
        (src / name).write_bytes(name.encode())
    a = PxeNode("52:54:00:00:00:01", src / "bz-pentium", src / "initrd.cpio",
                "console=ttyS0,115200 panic=1", line="linux-6.1", variant="pentium")
    b = PxeNode("52:54:00:00:00:0A", src / "bz-athlon", src / "initrd.cpio",
                "console=ttyS0,115200 panic=1 mem=512M", line="linux-6.1", variant="athlon")
    return a, b


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_tree_layout(tmp_path, two_nodes):
    root = make_tftp_tree(tmp_path / "tftp", list(two_nodes), default=two_nodes[0])
    assert _files(root) == [
        "ldlinux.c32",
        "lts/linux-6.1/initrd-athlon.img",
        "lts/linux-6.1/initrd-pentium.img",
        "lts/linux-6.1/vmlinuz-athlon",
        "lts/linux-6.1/vmlinuz-pentium",
        "pxelinux.0",
        "pxelinux.cfg/01-52-54-00-00-00-01",
        "pxelinux.cfg/01-52-54-00-00-00-0a",
        "pxelinux.cfg/default",
    ]
    assert (root / "lts/linux-6.1/vmlinuz-athlon").read_bytes() == b"bz-athlon"
    assert (root / "pxelinux.0").read_bytes() == pxe.PXELINUX.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp dirs left"


def test_node_configs_select_their_own_kernel(tmp_path, two_nodes):
    root = make_tftp_tree(tmp_path / "tftp", list(two_nodes))
    athlon = (root / "pxelinux.cfg/01-52-54-00-00-00-0a").read_text()
    assert "DEFAULT linux-6.1-athlon" in athlon
    assert "KERNEL lts/linux-6.1/vmlinuz-athlon\n" in athlon
    assert "APPEND initrd=lts/linux-6.1/initrd-athlon.img console=ttyS0,115200 panic=1 mem=512M\n" in athlon
    assert "SERIAL 0 115200" in athlon
    pentium = (root / "pxelinux.cfg/01-52-54-00-00-00-01").read_text()
    assert "KERNEL lts/linux-6.1/vmlinuz-pentium\n" in pentium
    assert "athlon" not in pentium


def test_default_without_a_default_node_refuses_loudly(tmp_path, two_nodes):
    root = make_tftp_tree(tmp_path / "tftp", list(two_nodes))
    default = (root / "pxelinux.cfg/default").read_text()
    assert "vmlinuz" not in default
    # What pxelinux prints for it (tests/fixtures/consoles/pxe-no-entry.log):
    printed = f"Loading {pxe.NO_ENTRY_KERNEL}... failed: No such file or directory"
    assert classify_line(printed).kind == "pxe-no-entry"


def test_rebuild_replaces_the_tree(tmp_path, two_nodes):
    root = make_tftp_tree(tmp_path / "tftp", list(two_nodes))
    (root / "stale").write_text("old")
    make_tftp_tree(root, [two_nodes[0]])
    assert not (root / "stale").exists()
    assert not (root / "pxelinux.cfg/01-52-54-00-00-00-0a").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "tftp"], "old tree removed"


def test_duplicate_mac_is_refused(tmp_path, two_nodes):
    a, b = two_nodes
    clash = PxeNode(a.mac.upper(), b.kernel, b.initrd, b.append, variant="athlon")
    with pytest.raises(UserError, match="52:54:00:00:00:01"):
        make_tftp_tree(tmp_path / "tftp", [a, clash])
    assert not (tmp_path / "tftp").exists()


def test_two_kernels_for_one_name_are_refused(tmp_path, two_nodes):
    a, b = two_nodes
    other = PxeNode("52:54:00:00:00:02", b.kernel, a.initrd, a.append, variant="pentium")
    with pytest.raises(UserError, match="vmlinuz-pentium"):
        make_tftp_tree(tmp_path / "tftp", [a, other])


def test_missing_kernel_is_named(tmp_path, two_nodes):
    a, _ = two_nodes
    gone = PxeNode(a.mac, tmp_path / "gone-bzImage", a.initrd, a.append)
    with pytest.raises(UserError, match="gone-bzImage"):
        make_tftp_tree(tmp_path / "tftp", [gone])


def test_missing_pxelinux_names_the_package(tmp_path, two_nodes, monkeypatch):
    monkeypatch.setattr(pxe, "PXELINUX", tmp_path / "nowhere" / "pxelinux.0")
    monkeypatch.setattr(pxe, "_PACKAGE_OF", {pxe.PXELINUX: "pxelinux", pxe.LDLINUX: "syslinux-common"})
    with pytest.raises(InfraError, match="`pxelinux`"):
        make_tftp_tree(tmp_path / "tftp", [two_nodes[0]])
    assert not (tmp_path / "tftp").exists()


def test_bad_variant_name_is_refused(tmp_path, two_nodes):
    a, _ = two_nodes
    with pytest.raises(UserError, match="variant"):
        make_tftp_tree(tmp_path / "tftp", [PxeNode(a.mac, a.kernel, a.initrd, a.append, variant="../x")])


# -- hostile loader ---------------------------------------------------------

def _fake_bzimage(path, protocol=0x0206, magic=b"HdrS"):
    image = bytearray(0x300)
    image[0x1FE:0x200] = b"\x55\xaa"
    image[0x202:0x206] = magic
    struct.pack_into("<H", image, 0x206, protocol)
    struct.pack_into("<I", image, INITRD_ADDR_MAX_OFFSET, 0x7FFFFFFF)
    path.write_bytes(bytes(image))
    return path


def test_hostile_bzimage_raises_initrd_addr_max_only(tmp_path):
    src = _fake_bzimage(tmp_path / "bzImage")
    dst = make_hostile_bzimage(src, tmp_path / "out" / "bzImage-hostile")
    before, after = src.read_bytes(), dst.read_bytes()
    assert read_initrd_addr_max(before) == 0x7FFFFFFF, "source untouched"
    assert read_initrd_addr_max(after) == 0xFFFFFFFF
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    assert changed and all(INITRD_ADDR_MAX_OFFSET <= i < INITRD_ADDR_MAX_OFFSET + 4 for i in changed)


def test_hostile_accepts_a_chosen_limit(tmp_path):
    dst = make_hostile_bzimage(_fake_bzimage(tmp_path / "bz"), tmp_path / "h", initrd_addr_max=0xC0000000)
    assert read_initrd_addr_max(dst.read_bytes()) == 0xC0000000


def test_hostile_refuses_a_non_bzimage(tmp_path):
    junk = tmp_path / "vmlinux.elf"
    junk.write_bytes(b"\x7fELF" + bytes(0x400))
    with pytest.raises(UserError, match="vmlinux.elf.*HdrS"):
        make_hostile_bzimage(junk, tmp_path / "h")
    assert not (tmp_path / "h").exists()


def test_hostile_refuses_an_old_boot_protocol(tmp_path):
    old = _fake_bzimage(tmp_path / "bz-2.02", protocol=0x0202)
    with pytest.raises(UserError, match="bz-2.02.*2.02"):
        make_hostile_bzimage(old, tmp_path / "h")


def test_hostile_refuses_a_missing_file(tmp_path):
    with pytest.raises(UserError, match="absent"):
        make_hostile_bzimage(tmp_path / "absent", tmp_path / "h")
