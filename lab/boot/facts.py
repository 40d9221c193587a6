"""What a boot's console tells us about the node: the `ltsp-mosix:` lines the
node init prints (initrd/init.c) and where the kernel says its initrd was."""
import re
from dataclasses import dataclass, field

from lab.boot.watcher import clean_line

INIT_PREFIX = "ltsp-mosix: "

# 6.1 arch/x86/kernel/setup.c reserve_initrd()/relocate_initrd().
_RAMDISK = re.compile(r"RAMDISK: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]")
# 6.1's relocate_initrd(), and patches/linux-2.4.22/0014 on 2.4
_RAMDISK_MOVED = re.compile(r"Move RAMDISK from \[mem (0x[0-9a-f]+)-0x[0-9a-f]+\] "
                            r"to \[mem (0x[0-9a-f]+)-0x[0-9a-f]+\]"
                            r"|initrd relocated from (0x[0-9a-f]+) to (0x[0-9a-f]+)")
_MEMTOTAL = re.compile(r"MemTotal:\s*(\d+) kB")
# 6.1 netdev_info(): "<driver> <pci address> <ifname>: ..." - which driver
# took the card (e.g. QEMU's rtl8139 goes to 8139cp, not 8139too).
_BOUND = re.compile(r"^(\S+) [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d (eth\d+): ")


@dataclass
class BootFacts:
    kernel: str | None = None                 # "6.1.0 #1 ..." (uname release + version)
    mem_total_kb: int | None = None
    cpus: int | None = None                   # "processor" entries in /proc/cpuinfo
    interfaces: list[str] = field(default_factory=list)
    mosix: str | None = None                  # "openMosix: /proc/hpc present ...", "no Mosix"
    initrd_start: int | None = None           # where the loader put the initrd
    initrd_moved_to: int | None = None        # where 6.1 copied it, if it did
    drivers: dict[str, str] = field(default_factory=dict)   # "eth0" -> "8139cp"

    @property
    def ethernet_interfaces(self) -> list[str]:
        return [name for name in self.interfaces if name != "lo"]


def parse_boot_facts(transcript: str) -> BootFacts:
    facts = BootFacts()
    for raw in transcript.splitlines():
        line = clean_line(raw)
        if (found := _RAMDISK.search(line)) and facts.initrd_start is None:
            facts.initrd_start = int(found.group(1), 16)
        if found := _RAMDISK_MOVED.search(line):
            facts.initrd_moved_to = int(found.group(2) or found.group(4), 16)
            if facts.initrd_start is None:      # 2.4 prints no RAMDISK line: the move names it
                facts.initrd_start = int(found.group(1) or found.group(3), 16)
        if (found := _BOUND.match(line)):
            facts.drivers.setdefault(found.group(2), found.group(1))
        if not line.startswith(INIT_PREFIX):
            continue
        said = line[len(INIT_PREFIX):]
        if said.startswith("kernel "):
            facts.kernel = said[len("kernel "):]
        elif found := _MEMTOTAL.search(said):
            facts.mem_total_kb = int(found.group(1))
        elif said.startswith("cpus: ") and said[6:].isdigit():
            facts.cpus = int(said[6:])
        elif said.startswith("interfaces:"):
            names = said[len("interfaces:"):].split()
            facts.interfaces = [] if names[:1] == ["none"] else names
        elif "Mosix" in said:
            facts.mosix = said
    return facts
