/*
 * ltsp-mosix NFS-root node init: /sbin/init of a node whose root is NFS.
 *
 * The boot-test init (init.c) lives in an initramfs and only looks at the
 * kernel.  This one runs from the NFS root the server exports, and proves
 * what a diskless cluster node needs: the root is the server's NFS export,
 * the node can write to it, it knows its address, and it reaches the other
 * nodes.  Like init.c it uses no libc (raw `int $0x80`, i386 numbers, also
 * valid on 2.4: socketcall, not the 6.1-only socket syscalls; poll() as the
 * clock, because tinyconfig 6.1 kernels have no 32-bit time syscalls).
 *
 * In order, on /dev/console:
 *   ltsp-mosix: kernel <release> <version>
 *   ltsp-mosix: host <nodename>              (DHCP option 12, via ip=dhcp)
 *   ltsp-mosix: root <device> <type> <opts>  (the "/" line of /proc/mounts)
 *   ltsp-mosix: ip <a.b.c.d> dev <ifname>    (SIOCGIFCONF, first non-loopback)
 *   ltsp-mosix: wrote /booted-<host>         (release, host and ip, on the NFS root)
 * then, if the server wrote /etc/ltsp-mosix/peers (one IPv4 address a line):
 *   ltsp-mosix: ping <ip> ok (try <n>)       ICMP echo over a raw socket,
 *   ltsp-mosix: ping <ip> FAILED (<n> tries) one try a second, PING_TRIES tries
 *   ltsp-mosix: wrote /ltsp-mosix/done-<ip>  the ping results, ending "done"
 *   ltsp-mosix: peers done | ltsp-mosix: peers timeout waiting for <ip>
 * The last step is a barrier: a node stays up (answering pings: the kernel
 * answers them) until every peer has written its done file, so no node
 * reboots while another still pings it.  The done files exist before boot
 * (the server creates them empty): open() on NFS revalidates an existing
 * file (close-to-open), whereas a lookup of a missing name can stay cached
 * as negative for up to a minute.
 * Finally BOOT_MARKER and reboot(RESTART), which ends QEMU under -no-reboot.
 */

#ifndef BOOT_MARKER
#error "BOOT_MARKER must be defined by the build (initrd/build.py)"
#endif

#include "rawsys.h"

/* socketcall(2) sub-calls: 2.4 has no separate socket system calls. */
#define SYS_SOCKET   1
#define SYS_SENDTO   11
#define SYS_RECVFROM 12

#define AF_INET      2
#define SOCK_DGRAM   2
#define SOCK_RAW     3
#define IPPROTO_ICMP 1
#define MSG_DONTWAIT 0x40
#define SIOCGIFCONF  0x8912
#define POLLIN       1

#define PEERS_FILE   "/etc/ltsp-mosix/peers"
#define DONE_PREFIX  "/ltsp-mosix/done-"
#define MAX_PEERS    32
#define PING_TRIES   120      /* about a second each: peers PXE-boot one after another */
#define WAIT_SECONDS 180      /* barrier: how long to wait for the slowest peer */

static long socketcall(long call, long *args)
{
    return syscall3(NR_socketcall, call, (long)args, 0);
}

/* Append src to dst (a buffer of size bytes), always NUL-terminated. */
static void append(char *dst, unsigned long size, const char *src)
{
    unsigned long n = string_length(dst);
    while (*src && n + 1 < size)
        dst[n++] = *src++;
    dst[n] = 0;
}

static void format_number(char *out, unsigned long n)
{
    char digits[12];
    int i = sizeof digits - 1, j = 0;

    digits[i] = 0;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i > 0);
    while (digits[i])
        out[j++] = digits[i++];
    out[j] = 0;
}

/* An IPv4 address as in memory (network order): bytes a.b.c.d. */
static void format_ip(char *out, const unsigned char *ip)
{
    int k;
    out[0] = 0;
    for (k = 0; k < 4; k++) {
        char part[12];
        format_number(part, ip[k]);
        if (k)
            append(out, 16, ".");
        append(out, 16, part);
    }
}

/* Parse "a.b.c.d" at s; returns the character after it, or 0 if malformed. */
static const char *parse_ip(const char *s, unsigned char *ip)
{
    int k;
    for (k = 0; k < 4; k++) {
        unsigned long v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            v = v * 10 + (unsigned long)(*s++ - '0');
            digits++;
        }
        if (!digits || v > 255)
            return 0;
        ip[k] = (unsigned char)v;
        if (k < 3 && *s++ != '.')
            return 0;
    }
    return s;
}

static int same_ip(const unsigned char *a, const unsigned char *b)
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* poll() with no descriptors: the one sleep both 2.4 and a tinyconfig 6.1 have. */
static void sleep_ms(long ms)
{
    syscall3(NR_poll, 0, 0, ms);
}

/* Write text to path on the NFS root and make sure the server has it. */
static int write_file(const char *path, const char *text)
{
    long fd = syscall3(NR_open, (long)path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    long n, len = (long)string_length(text);

    if (fd < 0)
        return -1;
    n = syscall3(NR_write, fd, (long)text, len);
    syscall3(NR_fsync, fd, 0, 0);
    if (syscall3(NR_close, fd, 0, 0) < 0 || n != len)
        return -1;
    return 0;
}

static struct new_utsname uts;
static char buf[4096];
static char host[80];
static char my_ip_text[16];
static unsigned char my_ip[4];
static unsigned char peers[MAX_PEERS][4];
static int peer_count;
static char results[MAX_PEERS * 48 + 16];

static void report_kernel(void)
{
    if (report_uname(&uts) < 0)
        return;
    put(PREFIX "host ");
    put(uts.nodename);
    put("\n");
}

/* The "/" line of /proc/mounts, first four fields: shows the root is NFS. */
static void report_root(void)
{
    char *p = buf;

    if (read_file("/proc/mounts", buf, sizeof buf) < 0) {
        put_line("root unknown (no /proc/mounts)");
        return;
    }
    while (*p) {
        char *end = p, *field = p;
        int n = 0;
        while (*end && *end != '\n')
            end++;
        while (field < end && *field != ' ')
            field++;
        if (field + 2 < end && field[1] == '/' && field[2] == ' ') {
            char *cut = p;
            while (cut < end && n < 4)
                if (*cut++ == ' ')
                    n++;
            if (n == 4)
                cut--;
            *cut = 0;
            put(PREFIX "root ");
            put(p);
            put("\n");
        }
        p = *end ? end + 1 : end;
    }
}

struct ifreq {
    char name[16];
    unsigned short family;
    unsigned short port;
    unsigned char addr[4];
    unsigned char pad[8];
};

/* The first non-loopback IPv4 address, from SIOCGIFCONF (2.4 and 6.1). */
static int find_my_ip(char *ifname)
{
    static struct ifreq reqs[8];
    struct { int len; struct ifreq *req; } conf;
    long args[3] = { AF_INET, SOCK_DGRAM, 0 };
    long fd = socketcall(SYS_SOCKET, args);
    int i, found = 0;

    if (fd < 0)
        return 0;
    conf.len = sizeof reqs;
    conf.req = reqs;
    if (syscall3(NR_ioctl, fd, SIOCGIFCONF, (long)&conf) == 0) {
        for (i = 0; i < conf.len / (int)sizeof(struct ifreq); i++) {
            if (reqs[i].family != AF_INET || reqs[i].addr[0] == 127)
                continue;
            memcpy(my_ip, reqs[i].addr, 4);
            memcpy(ifname, reqs[i].name, 15);
            ifname[15] = 0;
            found = 1;
            break;
        }
    }
    syscall3(NR_close, fd, 0, 0);
    return found;
}

static void report_ip(void)
{
    char ifname[16];

    if (!find_my_ip(ifname)) {
        put_line("ip none");
        return;
    }
    format_ip(my_ip_text, my_ip);
    put(PREFIX "ip ");
    put(my_ip_text);
    put(" dev ");
    put(ifname);
    put("\n");
}

static void write_booted_file(void)
{
    static char path[128], text[512];

    /* ip=dhcp sets the host name from DHCP option 12; without one it is "(none)". */
    host[0] = 0;
    append(host, sizeof host, uts.nodename[0] && uts.nodename[0] != '(' ? uts.nodename
                              : my_ip_text[0] ? my_ip_text : "unknown");
    path[0] = 0;
    append(path, sizeof path, "/booted-");
    append(path, sizeof path, host);
    text[0] = 0;
    append(text, sizeof text, "host ");
    append(text, sizeof text, host);
    append(text, sizeof text, "\nrelease ");
    append(text, sizeof text, uts.release);
    append(text, sizeof text, "\nip ");
    append(text, sizeof text, my_ip_text[0] ? my_ip_text : "none");
    append(text, sizeof text, "\n");
    put(PREFIX);
    put(write_file(path, text) == 0 ? "wrote " : "error: cannot write ");
    put(path);
    put("\n");
}

static void read_peers(void)
{
    const char *p = buf;

    if (read_file(PEERS_FILE, buf, sizeof buf) < 0)
        return;
    while (*p && peer_count < MAX_PEERS) {
        unsigned char ip[4];
        const char *after;
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        if (!*p)
            break;
        after = parse_ip(p, ip);
        if (after && !same_ip(ip, my_ip))
            memcpy(peers[peer_count++], ip, 4);
        while (*p && *p != '\n')
            p++;
    }
}

static unsigned short checksum(const unsigned char *data, int len)
{
    unsigned long sum = 0;
    int i;
    for (i = 0; i + 1 < len; i += 2)
        sum += (unsigned long)(data[i] | data[i + 1] << 8);
    if (len & 1)
        sum += data[len - 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

struct sockaddr_in {
    unsigned short family;
    unsigned short port;
    unsigned char addr[4];
    unsigned char zero[8];
};

/* One ICMP echo request to peer; 1 if its echo reply came within a second. */
static int ping_once(long sock, const unsigned char *peer, unsigned short seq)
{
    static unsigned char packet[64], reply[1500];
    struct sockaddr_in to, from;
    struct { int fd; short events; short revents; } pfd;
    long fromlen, args[6];
    unsigned short id = (unsigned short)(0x4c00 | my_ip[3]);
    int wait;

    memset(packet, 0, sizeof packet);
    packet[0] = 8;                            /* echo request, code 0 */
    packet[4] = (unsigned char)(id >> 8);
    packet[5] = (unsigned char)id;
    packet[6] = (unsigned char)(seq >> 8);
    packet[7] = (unsigned char)seq;
    memcpy(packet + 8, "ltsp-mosix node ping", 20);
    {
        unsigned short sum = checksum(packet, sizeof packet);
        packet[2] = (unsigned char)sum;
        packet[3] = (unsigned char)(sum >> 8);
    }
    memset(&to, 0, sizeof to);
    to.family = AF_INET;
    memcpy(to.addr, peer, 4);
    args[0] = sock; args[1] = (long)packet; args[2] = sizeof packet;
    args[3] = 0; args[4] = (long)&to; args[5] = sizeof to;
    if (socketcall(SYS_SENDTO, args) < 0) {
        sleep_ms(1000);                       /* e.g. ARP unanswered: peer not up yet */
        return 0;
    }
    for (wait = 0; wait < 10; wait++) {
        long n;
        int ihl;
        pfd.fd = (int)sock;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (syscall3(NR_poll, (long)&pfd, 1, 100) <= 0)
            continue;
        fromlen = sizeof from;
        args[0] = sock; args[1] = (long)reply; args[2] = sizeof reply;
        args[3] = MSG_DONTWAIT; args[4] = (long)&from; args[5] = (long)&fromlen;
        n = socketcall(SYS_RECVFROM, args);
        if (n < 28)
            continue;
        ihl = (reply[0] & 0x0f) * 4;
        if (n < ihl + 8 || !same_ip(reply + 12, peer))
            continue;
        if (reply[ihl] == 0 && reply[ihl + 4] == (unsigned char)(id >> 8) &&
            reply[ihl + 5] == (unsigned char)id && reply[ihl + 6] == (unsigned char)(seq >> 8) &&
            reply[ihl + 7] == (unsigned char)seq)
            return 1;
    }
    return 0;
}

static void ping_peers(void)
{
    long args[3] = { AF_INET, SOCK_RAW, IPPROTO_ICMP };
    long sock = socketcall(SYS_SOCKET, args);
    int i;

    results[0] = 0;
    if (sock < 0) {
        put_line("error: no raw ICMP socket");
        append(results, sizeof results, "error no raw socket\n");
        return;
    }
    for (i = 0; i < peer_count; i++) {
        char ip[16], tries[12];
        int try, ok = 0;
        format_ip(ip, peers[i]);
        for (try = 1; try <= PING_TRIES && !ok; try++)
            ok = ping_once(sock, peers[i], (unsigned short)try);
        format_number(tries, (unsigned long)(try - 1));
        put(PREFIX "ping ");
        put(ip);
        put(ok ? " ok (try " : " FAILED (");
        put(tries);
        put(ok ? ")\n" : " tries)\n");
        append(results, sizeof results, "ping ");
        append(results, sizeof results, ip);
        append(results, sizeof results, ok ? " ok\n" : " failed\n");
    }
    syscall3(NR_close, sock, 0, 0);
}

static void done_path(char *path, const char *ip_text)
{
    path[0] = 0;
    append(path, 64, DONE_PREFIX);
    append(path, 64, ip_text);
}

static int ends_with_done(const char *s)
{
    unsigned long n = string_length(s);
    return n >= 5 && starts_with(s + n - 5, "done\n");
}

/* Write our results, then wait until every peer has written its own. */
static void barrier(void)
{
    char path[64], ip[16];
    int seconds, i, waiting = 0;

    append(results, sizeof results, "done\n");
    done_path(path, my_ip_text);
    put(PREFIX);
    put(write_file(path, results) == 0 ? "wrote " : "error: cannot write ");
    put(path);
    put("\n");
    for (seconds = 0; seconds <= WAIT_SECONDS; seconds++) {
        waiting = -1;
        for (i = 0; i < peer_count && waiting < 0; i++) {
            format_ip(ip, peers[i]);
            done_path(path, ip);
            if (read_file(path, buf, sizeof buf) < 0 || !ends_with_done(buf))
                waiting = i;
        }
        if (waiting < 0) {
            put_line("peers done");
            return;
        }
        sleep_ms(1000);
    }
    format_ip(ip, peers[waiting]);
    put(PREFIX "peers timeout waiting for ");
    put(ip);
    put("\n");
}

void node_init(void)
{
    open_console();
    mount_proc();
    report_kernel();
    report_root();
    report_ip();
    write_booted_file();
    read_peers();
    if (peer_count) {
        ping_peers();
        barrier();
    } else {
        put_line("peers none");
    }
    put(BOOT_MARKER "\n");
    end_the_vm();
}
