/*
 * The bench's echo backend: one thread, epoll, non-blocking. Listens on 127.0.0.1:0, prints
 * the port on stdout, echoes every byte back, and answers a client's EOF with its own once the
 * echo is flushed. The same backend serves every subject, and it is in C
 * so that it takes as little of the 2 cores as possible away from the relay being measured.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
  int fd;
  char *pending; /* bytes read but not yet written back */
  size_t len;
};

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static void drop(int ep, struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pending);
  free(c);
}

/* Writes what is pending; returns 0 when all is flushed, 1 when the socket is full, -1 on error. */
static int flush(struct conn *c) {
  while (c->len > 0) {
    ssize_t n = write(c->fd, c->pending, c->len);
    if (n < 0) {
      if (errno == EAGAIN) return 1;
      if (errno == EINTR) continue;
      return -1;
    }
    memmove(c->pending, c->pending + n, c->len - n);
    c->len -= n;
  }
  return 0;
}

static void watch(int ep, struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

int main(void) {
  raise_fd_limit();
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
    perror("echo: bind/listen");
    return 1;
  }
  socklen_t alen = sizeof a;
  getsockname(lfd, (struct sockaddr *)&a, &alen);
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  static char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c == NULL) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (c->len > 0) {
        int r = flush(c);
        if (r < 0) { drop(ep, c); continue; }
        if (r > 0) continue;
        watch(ep, c, EPOLLIN);
      }
      ssize_t r = read(c->fd, buf, sizeof buf);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) drop(ep, c);
        continue;
      }
      if (r == 0) {
        /* EOF is only read once every echo is flushed (reading stops while some is pending):
           answer with our FIN and close. */
        shutdown(c->fd, SHUT_WR);
        drop(ep, c);
        continue;
      }
      ssize_t w = write(c->fd, buf, r);
      if (w < 0 && errno != EAGAIN) { drop(ep, c); continue; }
      if (w < 0) w = 0;
      if (w < r) {
        c->pending = realloc(c->pending, r - w);
        memcpy(c->pending, buf + w, r - w);
        c->len = r - w;
        watch(ep, c, EPOLLOUT);
      }
    }
  }
}
