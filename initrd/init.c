/*
 * ltsp-mosix node init: the whole userland of a boot-test initrd.
 *
 * It must run unchanged on Linux 2.4 (as /linuxrc or /sbin/init of an ext2
 * initrd) and on Linux 6.1 (as /init of an initramfs).  Debian's glibc
 * refuses kernels older than 3.2, so this file uses no libc at all: every
 * system call is a raw `int $0x80` with the i386 numbers, which have been
 * stable since Linux 1.x.
 *
 * What it does, in order, writing to /dev/console:
 *   ltsp-mosix: kernel <release> <version>
 *   ltsp-mosix: MemTotal: <n> kB
 *   ltsp-mosix: cpus: <n>            ("processor" lines of /proc/cpuinfo)
 *   ltsp-mosix: interfaces: <names from /proc/net/dev, or "none">
 *   ltsp-mosix: openMosix: /proc/hpc present ... | Mosix: /proc/mosix present ... | no Mosix
 *   <BOOT_MARKER>
 * then reboot(RESTART), which ends a QEMU started with -no-reboot.
 *
 * BOOT_MARKER is passed with -D by initrd/build.py so that the watcher
 * (qemu/watcher.py) and this program share one definition.
 *
 * Build: gcc -m32 -static -nostdlib -ffreestanding -fno-pie -no-pie
 *        -fno-stack-protector -Os -DBOOT_MARKER='"..."' -o init init.c
 */

#ifndef BOOT_MARKER
#error "BOOT_MARKER must be defined by the build (initrd/build.py)"
#endif

#include "rawsys.h"

static int exists(const char *path)
{
    return syscall3(NR_access, (long)path, F_OK, 0) == 0;
}

static void report_kernel(void)
{
    static struct new_utsname uts;

    report_uname(&uts);
}

static char buf[8192];

/* Print the line of buf that starts with key, without the newline. */
static int put_line_starting_with(const char *key)
{
    char *p = buf;

    while (*p) {
        char *end = p;
        while (*end && *end != '\n')
            end++;
        if (starts_with(p, key)) {
            char saved = *end;
            *end = 0;
            put_line(p);
            *end = saved;
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

static void report_memory(void)
{
    if (read_file("/proc/meminfo", buf, sizeof buf) < 0 ||
        !put_line_starting_with("MemTotal:"))
        put_line("MemTotal: unknown");
}

static void put_number(unsigned long n)
{
    char digits[12];
    int i = sizeof digits - 1;

    digits[i] = 0;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i > 0);
    put(digits + i);
}

/* The CPUs the kernel brought up: an SMP variant that starts one CPU has
 * failed even if it boots. */
static void report_cpus(void)
{
    char *p = buf;
    unsigned long cpus = 0;

    if (read_file("/proc/cpuinfo", buf, sizeof buf) < 0) {
        put_line("cpus: unknown");
        return;
    }
    while (*p) {
        if (starts_with(p, "processor"))
            cpus++;
        while (*p && *p != '\n')
            p++;
        if (*p)
            p++;
    }
    put(PREFIX "cpus: ");
    put_number(cpus);
    put("\n");
}

/* /proc/net/dev: two header lines, then "  <name>: <counters>" per device
 * (same layout on 2.4 and 6.1). */
static void report_interfaces(void)
{
    char *p = buf;
    int line = 0, found = 0;

    put(PREFIX "interfaces:");
    if (read_file("/proc/net/dev", buf, sizeof buf) < 0) {
        put(" none (no /proc/net/dev)\n");
        return;
    }
    while (*p) {
        char *end = p, *name, *colon;
        while (*end && *end != '\n')
            end++;
        if (line++ >= 2) {
            name = p;
            while (name < end && *name == ' ')
                name++;
            colon = name;
            while (colon < end && *colon != ':')
                colon++;
            if (colon < end && colon > name) {
                *colon = 0;
                put(" ");
                put(name);
                found = 1;
            }
        }
        p = *end ? end + 1 : end;
    }
    put(found ? "\n" : " none\n");
}

/* Print "<label>: <path> present (<file>=<value>)" with the node number the
 * cluster kernel reports, if it reports one. */
static void report_cluster_dir(const char *label, const char *dir, const char *node_file)
{
    put(PREFIX);
    put(label);
    put(": ");
    put(dir);
    put(" present");
    if (read_file(node_file, buf, sizeof buf) > 0) {
        unsigned long n = string_length(buf);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = 0;
        put(" (");
        put(node_file);
        put("=");
        put(buf);
        put(")");
    }
    put("\n");
}

static void report_mosix(void)
{
    if (exists("/proc/hpc"))
        report_cluster_dir("openMosix", "/proc/hpc", "/proc/hpc/admin/mospe");
    else if (exists("/proc/mosix"))
        report_cluster_dir("Mosix", "/proc/mosix", "/proc/mosix/admin/mospe");
    else
        put_line("no Mosix");
}

void node_init(void)
{
    open_console();
    mount_proc();
    report_kernel();
    report_memory();
    report_cpus();
    report_interfaces();
    report_mosix();
    put(BOOT_MARKER "\n");
    end_the_vm();
}
