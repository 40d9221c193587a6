/*
 * rawsys.h: what the project's tiny node inits (init.c, nfsinit.c) share.
 *
 * No libc: Debian's glibc refuses kernels older than 3.2 and these programs
 * must run on Linux 2.4 as well as 6.1, so every system call is a raw
 * `int $0x80` with the i386 numbers (arch/i386/kernel/entry.S in 2.4,
 * unchanged in 6.1).  Everything is static: each init is one translation unit.
 */
#ifndef LTSP_MOSIX_RAWSYS_H
#define LTSP_MOSIX_RAWSYS_H

#define NR_read       3
#define NR_write      4
#define NR_open       5
#define NR_close      6
#define NR_mount      21
#define NR_pause      29
#define NR_access     33
#define NR_sync       36
#define NR_mkdir      39
#define NR_ioctl      54
#define NR_reboot     88
#define NR_socketcall 102
#define NR_fsync      118
#define NR_newuname   122
#define NR_poll       168

#define O_RDONLY 0
#define O_WRONLY 1
#define O_CREAT  0100
#define O_TRUNC  01000
#define O_NOCTTY 0400
#define F_OK     0
#define EEXIST   17
#define TCSBRK   0x5409

#define LINUX_REBOOT_MAGIC1      0xfee1dead
#define LINUX_REBOOT_MAGIC2      672274793
#define LINUX_REBOOT_CMD_RESTART 0x01234567

#define PREFIX "ltsp-mosix: "

static long syscall3(long nr, long a, long b, long c)
{
    long ret;
    /* ebx is callee-saved but usable here: no PIC, so no GOT pointer in it. */
    __asm__ volatile ("int $0x80"
                      : "=a"(ret)
                      : "0"(nr), "b"(a), "c"(b), "d"(c)
                      : "memory");
    return ret;
}

static long syscall5(long nr, long a, long b, long c, long d, long e)
{
    long ret;
    __asm__ volatile ("int $0x80"
                      : "=a"(ret)
                      : "0"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                      : "memory");
    return ret;
}

/* gcc may emit calls to these even with -ffreestanding (struct copies). */
void *memset(void *dst, int value, unsigned long n)
{
    unsigned char *p = dst;
    while (n--)
        *p++ = (unsigned char)value;
    return dst;
}

void *memcpy(void *dst, const void *src, unsigned long n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

static unsigned long string_length(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static int starts_with(const char *s, const char *prefix)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return 0;
    return 1;
}

static int console_fd = 1;

static void put(const char *s)
{
    syscall3(NR_write, console_fd, (long)s, (long)string_length(s));
}

static void put_line(const char *s)
{
    put(PREFIX);
    put(s);
    put("\n");
}

/* Read a whole small /proc file into buf (NUL-terminated); -1 if absent.
 * /proc on 2.4 may hand out a file in several short reads, hence the loop. */
static long read_file(const char *path, char *buf, unsigned long size)
{
    long fd = syscall3(NR_open, (long)path, O_RDONLY, 0);
    unsigned long used = 0;
    long n;

    if (fd < 0)
        return -1;
    while (used + 1 < size) {
        n = syscall3(NR_read, fd, (long)(buf + used), (long)(size - 1 - used));
        if (n <= 0)
            break;
        used += (unsigned long)n;
    }
    buf[used] = 0;
    syscall3(NR_close, fd, 0, 0);
    return (long)used;
}

static void open_console(void)
{
    /* Both kernels already give init fds 0-2 on /dev/console when the node
     * exists; opening it explicitly makes output independent of that. */
    long fd = syscall3(NR_open, (long)"/dev/console", O_WRONLY | O_NOCTTY, 0);
    if (fd >= 0)
        console_fd = (int)fd;
}

static void mount_proc(void)
{
    long err = syscall3(NR_mkdir, (long)"/proc", 0555, 0);
    if (err < 0 && err != -EEXIST)
        put_line("warning: mkdir /proc failed");
    if (syscall5(NR_mount, (long)"proc", (long)"/proc", (long)"proc", 0, 0) < 0)
        put_line("warning: mount proc failed");
}

struct new_utsname {
    char sysname[65];
    char nodename[65];
    char release[65];
    char version[65];
    char machine[65];
    char domainname[65];
};

/* "kernel <release> <version>" from uname(2); 0, or -1 if uname failed. */
static int report_uname(struct new_utsname *uts)
{
    if (syscall3(NR_newuname, (long)uts, 0, 0) < 0) {
        put_line("kernel unknown (uname failed)");
        return -1;
    }
    put(PREFIX "kernel ");
    put(uts->release);
    put(" ");
    put(uts->version);
    put("\n");
    return 0;
}

static void end_the_vm(void)
{
    /* write() only queues console output: wait until the UART has sent it
     * (TCSBRK with a non-zero argument is tcdrain()), or a reboot on the
     * other CPU of an SMP node cuts the marker off. */
    syscall3(NR_ioctl, console_fd, TCSBRK, 1);
    syscall3(NR_sync, 0, 0, 0);
    syscall5(NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
             LINUX_REBOOT_CMD_RESTART, 0, 0);
    /* Only reached if reboot failed: returning from PID 1 would panic and
     * hide the real cause, so say so and wait for the watcher's timeout. */
    put_line("error: reboot() failed");
    for (;;)
        syscall3(NR_pause, 0, 0, 0);
}

/* The entry point: no libc, so no crt1.o.  Align the stack as the i386 ABI
 * expects, call the program's node_init(), never return. */
void node_init(void);
__asm__(
    ".text\n"
    ".globl _start\n"
    "_start:\n"
    "    xorl %ebp, %ebp\n"
    "    andl $-16, %esp\n"
    "    call node_init\n"
    "1:  hlt\n"
    "    jmp 1b\n");

#endif
