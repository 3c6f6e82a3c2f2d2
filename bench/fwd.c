/* fwd.c - the floor of any relay built as two extra processes: a minimal TCP forwarder (one
 * process, epoll, read then write, no protocol, no buffering beyond one read). bench/datapath.py
 * --floor chains two of them (relay and agent stand-ins) in front of the same services, so that
 * Tether's added latency can be set against what two more processes cost on the same machine.
 * Usage: fwd LISTEN_PORT TARGET_PORT (127.0.0.1 both). Loopback only; for benchmarks only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536

static int peer[MAX_FD];

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    return a;
}

/* Accepts one client and connects it to the target; both join the epoll set. */
static void accept_one(int ep, int ls, int target)
{
    int one = 1, c = accept(ls, NULL, NULL), t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = loopback(target);
    struct epoll_event ev = {.events = EPOLLIN};
    if (c < 0 || t < 0 || c >= MAX_FD || t >= MAX_FD ||
        connect(t, (struct sockaddr *)&b, sizeof(b)) != 0) {
        if (c >= 0)
            close(c);
        if (t >= 0)
            close(t);
        return;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    peer[c] = t;
    peer[t] = c;
    ev.data.fd = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
    ev.data.fd = t;
    epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev);
}

int main(int argc, char **argv)
{
    static char buf[65536];
    struct epoll_event ev = {.events = EPOLLIN}, evs[64];
    struct sockaddr_in a;
    int one = 1, ls, ep, target;

    if (argc != 3) {
        fprintf(stderr, "usage: fwd LISTEN_PORT TARGET_PORT\n");
        return 2;
    }
    target = atoi(argv[2]);
    a = loopback(atoi(argv[1]));
    ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 512) != 0) {
        perror("fwd: listen");
        return 1;
    }
    ep = epoll_create1(0);
    ev.data.fd = ls;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                accept_one(ep, ls, target);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r <= 0) {
                close(peer[fd]);
                close(fd);
                continue;
            }
            /* Blocking sockets: the write takes it all (the floor has no flow control). */
            for (ssize_t off = 0; off < r;) {
                ssize_t w = write(peer[fd], buf + off, (size_t)(r - off));
                if (w <= 0)
                    break;
                off += w;
            }
        }
    }
}
