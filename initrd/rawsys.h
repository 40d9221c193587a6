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

#endif
