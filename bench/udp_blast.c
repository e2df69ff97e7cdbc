/* udp_blast: paced event datagrams for bench/bench_intake.py, sent with sendmmsg(2).

Where it sits: a bench tool only (never part of the server). bench_intake.py compiles it with the
system C compiler at run time; without a compiler the bench falls back to its Python senders.
One Python sender costs ~3 us of CPU per datagram and tops out near 320k/s, and several of them
take the CPU the server's intake needs on a small machine; this sender builds each datagram from
a template (a copy and a few digits) and hands the kernel 64 at a time. On loopback the sending
process pays for the kernel's delivery to the receiving socket (about 2.5 us a datagram with
sendmmsg); with UDP GSO (UDP_SEGMENT, Linux 4.18+) the 64 datagrams go down the stack as one
and are split only on arrival (about 0.6 us), so every datagram has the same length (fixed-width
fields) and sendmmsg is the fallback when the kernel refuses GSO.

    udp_blast HOST PORT RATE SECONDS FIRST_ID EPOCH STAMP

Each datagram is an `<epoch> <line>` event the intake accepts (the same lines as the bench's
Python sender): `EPOCH "STAMP.ffffff" bench-sensor 10.a.b.1 PORT 198.51.100.c 443 TCP IP
198.51.100.c "known attacker ID" (static)`, where ID (10 digits) counts up from FIRST_ID, one per
datagram, so the bench can count exactly which events reached the day file. Sending is paced to
RATE datagrams a second (a batch is sent when it is due, clock_nanosleep in between). Prints
`sent N SECONDS gso|sendmmsg` on stdout at the end. Exit status 2 on bad arguments or a socket
error.
*/

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define VARIANTS 1000
#define MAX_DGRAM 256
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes `id` as 10 decimal digits (zero-padded) at `out`. */
static void put_id(char *out, unsigned long long id) {
    for (int i = 9; i >= 0; i--) {
        out[i] = (char)('0' + id % 10);
        id /= 10;
    }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: udp_blast HOST PORT RATE SECONDS FIRST_ID EPOCH STAMP\n");
        return 2;
    }
    const char *host = argv[1], *stamp = argv[7];
    int port = atoi(argv[2]);
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    unsigned long long first = strtoull(argv[5], NULL, 10);
    long long epoch = atoll(argv[6]);
    if (rate <= 0 || seconds <= 0 || port <= 0 || port > 65535 || strlen(stamp) != 19) {
        fprintf(stderr, "udp_blast: bad arguments\n");
        return 2;
    }

    /* the datagram up to the id, per variant, and the common tail after it */
    static char head[VARIANTS][MAX_DGRAM];
    static int head_len[VARIANTS];
    static const char tail[] = "\" (static)";
    for (int v = 0; v < VARIANTS; v++) {
        head_len[v] = snprintf(head[v], MAX_DGRAM,
                               "%lld \"%s.%06d\" bench-sensor 10.%d.%d.1 %d 198.51.100.%d 443 TCP IP "
                               "198.51.100.%d \"known attacker ",
                               epoch, stamp, v, 100 + v % 150, v % 7, 10000 + v, 100 + v % 150, 100 + v % 150);
    }
    int size = head_len[0] + 10 + (int)sizeof tail - 1;     /* every datagram: the id has 10 digits */

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "udp_blast: bad IPv4 address %s\n", host);
        return 2;
    }
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    if (sock < 0 || setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0
        || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("udp_blast: socket");
        return 2;
    }

    int gso = setsockopt(sock, IPPROTO_UDP, UDP_SEGMENT, &size, sizeof size) == 0;
    static char bufs[BATCH][MAX_DGRAM];
    static char train[BATCH * MAX_DGRAM];       /* GSO: the batch back to back */
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    unsigned long long total = (unsigned long long)(rate * seconds), sent = 0;
    double start = now_s();
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    long long start_ns = (long long)due.tv_sec * 1000000000LL + due.tv_nsec;
    while (sent < total) {
        int n = total - sent < BATCH ? (int)(total - sent) : BATCH;
        /* the batch is due when the previous ones have filled the rate's time */
        long long at = start_ns + (long long)((double)sent / rate * 1e9);
        due.tv_sec = at / 1000000000LL;
        due.tv_nsec = at % 1000000000LL;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
        }
        for (int i = 0; i < n; i++) {
            unsigned long long id = first + sent + (unsigned long long)i;
            int v = (int)(id % VARIANTS);
            char *out = gso ? train + i * size : bufs[i];
            memcpy(out, head[v], (size_t)head_len[v]);
            put_id(out + head_len[v], id);
            memcpy(out + head_len[v] + 10, tail, sizeof tail - 1);
            iov[i].iov_len = (size_t)size;
        }
        if (gso) {
            while (send(sock, train, (size_t)(n * size), 0) < 0) {
                if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED) continue;
                perror("udp_blast: send");
                return 2;
            }
        }
        int done = gso ? n : 0;
        while (done < n) {
            int r = sendmmsg(sock, msgs + done, (unsigned)(n - done), 0);
            if (r < 0) {
                if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED) continue;
                perror("udp_blast: sendmmsg");
                return 2;
            }
            done += r;
        }
        sent += (unsigned long long)n;
    }
    printf("sent %llu %.3f %s\n", sent, now_s() - start, gso ? "gso" : "sendmmsg");
    return 0;
}
