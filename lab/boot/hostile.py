"""A "hostile loader" on demand: a copy of a bzImage whose boot header lets
the loader put the initrd anywhere below 4 GB.

Loaders (QEMU's -initrd, pxelinux) place the initrd as high as the header's
`initrd_addr_max` (offset 0x22C, boot protocol >= 2.03) allows, capped by the
top of RAM.  Raising it reproduces the Mosix-era bug on a >1 GB node: 2.4
drops an initrd above 896 MB ("initrd extends beyond end of memory"), while
6.1 copies it down (relocate_initrd) and must still boot.
See Documentation/x86/boot.rst in the kernel tree."""
import struct
from pathlib import Path

from common.errors import UserError
from common.paths import atomic_write_bytes

HEADER_MAGIC_OFFSET = 0x202      # "HdrS"
PROTOCOL_OFFSET = 0x206          # u16, e.g. 0x0203
INITRD_ADDR_MAX_OFFSET = 0x22C   # u32, protocol >= 2.03
MIN_PROTOCOL = 0x0203
# The end of low memory on i386 (2.4's max_low_pfn, 6.1's VMSPLIT_3G lowmem):
# an initrd that starts at or above it is "high" and must be copied below.
LOWMEM_END = 0x38000000


def read_initrd_addr_max(image: bytes, name: str = "bzImage") -> int:
    _check_header(image, name)
    return struct.unpack_from("<I", image, INITRD_ADDR_MAX_OFFSET)[0]


def _check_header(image: bytes, name: str) -> None:
    if len(image) < INITRD_ADDR_MAX_OFFSET + 4 or \
            image[HEADER_MAGIC_OFFSET:HEADER_MAGIC_OFFSET + 4] != b"HdrS":
        raise UserError(f"{name} is not a Linux bzImage: no \"HdrS\" boot header "
                        f"magic at offset {HEADER_MAGIC_OFFSET:#x}")
    protocol = struct.unpack_from("<H", image, PROTOCOL_OFFSET)[0]
    if protocol < MIN_PROTOCOL:
        raise UserError(f"{name} uses boot protocol {protocol >> 8}.{protocol & 0xff:02d}; "
                        f"initrd_addr_max needs 2.03 or later")


def make_hostile_bzimage(src: Path, dst: Path, initrd_addr_max: int = 0xFFFFFFFF) -> Path:
    """Copy src to dst with initrd_addr_max raised; src is never changed."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise UserError(f"kernel image {src} does not exist")
    if not 0 < initrd_addr_max <= 0xFFFFFFFF:
        raise UserError(f"initrd_addr_max {initrd_addr_max:#x} must fit in 32 bits")
    image = bytearray(src.read_bytes())
    _check_header(bytes(image), str(src))
    struct.pack_into("<I", image, INITRD_ADDR_MAX_OFFSET, initrd_addr_max)
    return atomic_write_bytes(dst, bytes(image))
