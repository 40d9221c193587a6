"""Build the node init and pack it as an initrd.

Linux 6.1 gets an uncompressed newc cpio (the kernel unpacks it into its
rootfs and runs /init).  Linux 2.4 has no initramfs: it gets an ext2 image
that the kernel loads into /dev/ram0 and runs as /linuxrc (or /sbin/init
with root=/dev/ram0).

Every output is byte-reproducible and written to a temporary name, then
renamed into place, so a reader never sees half an image."""
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from common import paths
from common.errors import InfraError, UserError
from common.paths import atomic_output, atomic_write_bytes
from initrd.cpio import CpioEntry, newc_archive

# The line the node init prints once it has reported everything; the console
# watcher (lab/boot/watcher.py) passes a boot exactly when it sees this string.
# init.c receives it with -DBOOT_MARKER, so there is one definition.
BOOT_MARKER = "LTSP-MOSIX-BOOT-OK"

INIT_SOURCE = Path(__file__).resolve().parent / "init.c"

# 2.4 loads the whole image into a ramdisk of CONFIG_BLK_DEV_RAM_SIZE
# (default 4096 KiB); 1 MiB holds the init with room to spare.
EXT2_SIZE_KIB = 1024

_GCC_FLAGS = [
    "-m32", "-march=i386",          # runs on every CPU variant, 2.4 included
    "-static", "-nostdlib", "-ffreestanding",
    "-fno-pie", "-no-pie", "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables", "-fno-ident",
    "-Os", "-s",
    # Deterministic output: no build id, no host paths (the source path
    # would otherwise land in the symbol table before -s strips it).
    "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-z,noseparate-code",
    "-Wall", "-Werror",
]



def initrd_dir(line) -> Path:
    return paths.line_dir(line.name) / "initrd"


def initrd_path(line) -> Path:
    """Where a line's node initrd is built (the boot test, LAVA and the
    release read it there)."""
    return initrd_dir(line) / ("initrd.cpio" if line.initrd_format == "cpio" else "initrd.ext2")

def _read_init(init_path: Path) -> bytes:
    init_path = Path(init_path)
    if not init_path.is_file():
        raise UserError(f"node init binary {init_path} does not exist "
                        f"(build it with initrd.build.compile_init)")
    return init_path.read_bytes()


def _gcc_can_target_i386(gcc: str) -> bool:
    """Does `gcc -m32` work at all (compiler, assembler and linker)?"""
    with tempfile.TemporaryDirectory(prefix="ltsp-m32-") as work:
        probe = Path(work) / "probe.c"
        probe.write_text("void _start(void) { for (;;) ; }\n")
        proc = subprocess.run([gcc, "-m32", "-static", "-nostdlib", "-o",
                               str(Path(work) / "probe"), str(probe)],
                              capture_output=True)
        return proc.returncode == 0


def compile_init(out_dir: Path, source: Path = INIT_SOURCE) -> Path:
    """Compile init.c into out_dir/init, a static i386 ELF with no libc."""
    source = Path(source).resolve()     # gcc runs in the source's folder
    gcc = shutil.which("gcc")
    if gcc is None:
        raise InfraError("gcc not found: install the Debian package `gcc` "
                         "(and `gcc-multilib` for -m32) to build the node init")
    if not Path(source).is_file():
        raise UserError(f"node init source {source} does not exist")
    out = Path(out_dir) / "init"
    with atomic_output(out) as tmp:
        argv = [gcc, *_GCC_FLAGS, f'-DBOOT_MARKER="{BOOT_MARKER}"', "-o", str(tmp), str(source)]
        # cwd and a fixed locale keep diagnostics and output host-independent.
        proc = subprocess.run(argv, cwd=Path(source).parent, capture_output=True,
                              text=True, env={**os.environ, "LC_ALL": "C"})
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if not _gcc_can_target_i386(gcc):
                raise InfraError(f"{gcc} cannot build 32-bit code (gcc -m32 fails): install "
                                 f"the Debian package `gcc-multilib`.\n{err}")
            raise UserError(f"compiling {source} failed:\n{err}")
    return out


def cpio_entries(init: bytes) -> list[CpioEntry]:
    """The initramfs for 6.1: /init, /dev/console (the kernel opens it for
    init's stdin/stdout before /dev is populated), mount points."""
    return [
        CpioEntry.file("init", init, 0o755),
        CpioEntry.directory("dev"),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.directory("proc", 0o555),
        CpioEntry.directory("sys", 0o555),
    ]


def make_cpio_initrd(out: Path, init_path: Path) -> Path:
    """Write an uncompressed newc cpio initramfs holding init_path as /init."""
    return atomic_write_bytes(Path(out), newc_archive(cpio_entries(_read_init(init_path))))


def _ext2_tarball(init: bytes) -> bytes:
    """The 2.4 initrd's tree as a tar stream with fixed order and metadata.

    Why a tarball and not `genext2fs -d DIR -D devtable`: -d copies in the
    host's readdir order and with the host files' times, and device-table
    nodes take the table file's mtime; a tar we write ourselves fixes all of
    it, and carries /dev/console as a real character device."""
    def member(name, kind, mode, data=b"", dev=(0, 0)):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size = kind, mode, len(data)
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
        info.devmajor, info.devminor = dev
        return info, (io.BytesIO(data) if data else None)

    members = [
        member("dev", tarfile.DIRTYPE, 0o755),
        member("dev/console", tarfile.CHRTYPE, 0o600, dev=(5, 1)),
        member("linuxrc", tarfile.REGTYPE, 0o755, init),       # 2.4 runs it from the initrd
        member("proc", tarfile.DIRTYPE, 0o555),
        member("sbin", tarfile.DIRTYPE, 0o755),
        member("sbin/init", tarfile.REGTYPE, 0o755, init),     # with root=/dev/ram0
    ]
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
    return stream.getvalue()


def make_ext2_initrd(out: Path, init_path: Path, size_kib: int = EXT2_SIZE_KIB) -> Path:
    """Write an ext2 image for 2.4 with the init at /linuxrc and /sbin/init."""
    genext2fs = shutil.which("genext2fs")
    if genext2fs is None:
        raise InfraError("genext2fs not found: install the Debian package `genext2fs` "
                         "to build the ext2 initrd for Linux 2.4")
    init = _read_init(init_path)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ltsp-ext2-") as work, atomic_output(out) as tmp:
        tarball = Path(work) / "tree.tar"
        tarball.write_bytes(_ext2_tarball(init))
        # -f: filesystem times 0; -U: every file owned by root; -b: size in
        # 1 KiB blocks.  genext2fs 1.4 writes no UUID, so the image is stable.
        argv = [genext2fs, "-b", str(size_kib), "-a", str(tarball), "-U", "-f", str(tmp)]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"genext2fs failed building {out} "
                            f"({size_kib} KiB too small?):\n{proc.stderr.strip()}")
    return out
