"""What a console line means: the table of failure patterns, as in LAVA.

The table is data.  Order matters twice:
  * the watcher stops at the first *fatal* match in the console stream;
  * the full line of a match is then classified by the FIRST row whose regex
    matches it, so specific rows (an init that died, a missing root) come
    before the generic `Kernel panic` row that shares their line.
Non-fatal rows are recorded as warnings and the watch goes on.

Messages were checked against the 2.4.22 and 6.1 sources (arch/*/kernel/
setup.c, init/do_mounts.c, init/main.c, kernel/exit.c, arch/x86/boot/cpu.c)
and against pxelinux/iPXE output."""
import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class FailurePattern:
    regex: str
    kind: str
    fatal: bool
    why: str


FAILURE_PATTERNS: tuple[FailurePattern, ...] = (
    # -- loader stage (pxelinux / iPXE / the kernel's real-mode setup) --
    FailurePattern(r"ltsp-mosix-no-PXE-entry", "pxe-no-entry", True,
                   "our pxelinux.cfg/default (rootfs/pxetree.py): the node's MAC has no 01-<mac> file"),
    FailurePattern(r"Loading \S+\.\.\. ?failed", "pxe-load-failed", True,
                   "pxelinux 6 could not fetch the kernel or initrd over TFTP"),
    FailurePattern(r"Could not find kernel image", "pxe-load-failed", True,
                   "the same, in syslinux 3/4 wording"),
    FailurePattern(r"Failed to load ldlinux\.c32", "pxe-ldlinux-missing", True,
                   "pxelinux.0 without ldlinux.c32 beside it"),
    FailurePattern(r"No more network devices", "pxe-no-boot-device", True,
                   "iPXE found no DHCP/TFTP answer"),
    FailurePattern(r"This kernel requires (an? \S+ CPU|the following features)",
                   "cpu-mismatch", True,
                   "6.1 boot/cpu.c: the kernel was built for a newer CPU than emulated"),
    # -- initrd placement (the Mosix-era >1 GB node bug) --
    FailurePattern(r"initrd extends beyond end of memory", "initrd-beyond-memory", True,
                   "2.4 setup_arch(): initrd above max_low_pfn is dropped; root mount panics next"),
    FailurePattern(r"INITRD: 0x[0-9a-f]+\+0x[0-9a-f]+ (is not a memory region|overlaps)",
                   "initrd-beyond-memory", True,
                   "6.1 init/initramfs.c: the loader's initrd is not usable memory"),
    FailurePattern(r"Cannot find place for new RAMDISK", "initrd-relocation-failed", True,
                   "6.1 relocate_initrd(): no low memory to copy a high initrd into"),
    # -- root and init --
    FailurePattern(r"Attempted to kill init", "init-died", True,
                   "PID 1 exited: the node init crashed or returned"),
    FailurePattern(r"No (working )?init found", "no-init", True,
                   "no /init, /linuxrc or /sbin/init could be executed"),
    FailurePattern(r"VFS: Cannot open root device", "no-root", True,
                   "6.1: root= names no usable device (initrd missing or dropped)"),
    FailurePattern(r"Unable to mount root", "no-root", True,
                   "2.4 and 6.1 mount_root() panic"),
    # -- kernel crashes --
    FailurePattern(r"kernel BUG at", "bug", True, "BUG() / BUG_ON() hit"),
    FailurePattern(r"(?m)^[\r ]*(\[[ \d.]+\] )?(<\d>)?BUG: ", "bug", True,
                   "6.1 BUG: lines (NULL pointer dereference, page fault, sleeping in atomic, ...); "
                   "anchored at the start of the message because 2.4 SMP prints "
                   "\"BIOS BUG: CPU#0 improperly initialized, has ... TSC skew! FIXED.\" and boots on"),
    FailurePattern(r"Unable to handle kernel (NULL pointer dereference|paging request)",
                   "oops", True, "2.4 page-fault oops"),
    FailurePattern(r"general protection fault", "oops", True, "GPF in kernel mode"),
    FailurePattern(r"invalid (opcode|operand): ", "oops", True,
                   "an instruction the emulated CPU lacks (wrong CPU variant?)"),
    FailurePattern(r"Oops: ", "oops", True, "any oops"),
    FailurePattern(r"Kernel panic", "kernel-panic", True, "2.4 `Kernel panic:`, 6.1 `Kernel panic - not syncing:`"),
    # -- recorded, not fatal: the boot may still reach the marker --
    FailurePattern(r"Initramfs unpacking failed", "initramfs-unpack-failed", False,
                   "6.1 goes on without it; `no-init` or `no-root` follows if it mattered"),
    FailurePattern(r"WARNING: CPU: ", "warning", False, "WARN_ON(): a Call Trace follows, boot goes on"),
    FailurePattern(r"Call Trace", "call-trace", False,
                   "alone it is a WARN or a hung-task report; an oops/BUG/panic line comes first when fatal"),
)

def classify_line(line: str, patterns=FAILURE_PATTERNS) -> FailurePattern | None:
    """The first table row matching this console line, or None."""
    for pattern in patterns:
        if _compiled(pattern.regex).search(line):
            return pattern
    return None


@functools.lru_cache(maxsize=None)
def _compiled(regex: str) -> re.Pattern:
    return re.compile(regex)
