"""The image stage's task body: the node initrd of a line (doit initrd)."""
from pathlib import Path

from common.hashing import sha256_file
from initrd.build import compile_init, initrd_dir, initrd_path, make_cpio_initrd, make_ext2_initrd


def build_initrd(line) -> Path:
    """The tiny static init in an ext2 image (2.4) or a cpio initramfs (6.1)."""
    init = compile_init(initrd_dir(line))
    maker = make_cpio_initrd if line.initrd_format == "cpio" else make_ext2_initrd
    out = maker(initrd_path(line), init)
    print(f"[initrd {line.name}] {out} ({out.stat().st_size} bytes, sha256 "
          f"{sha256_file(out)[:16]}…)", flush=True)
    return out
