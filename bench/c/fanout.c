/*
 * The bench's fan-out load generator, in C: a Node generator reading 49 sockets used a whole
 * core during the burst and was the bottleneck. CLIENTS clients join a broadcast server on
 * 127.0.0.1:PORT; the first sends LINES lines of 64 bytes; every other client counts the lines
 * it receives. Prints one JSON object.
 *
 *   fanout PORT CLIENTS LINES TIMEOUT_S [stuck]
 *
 * Lines are counted by a marker inside each line ("~M~"), so a chat prefix ("<user3> "), a prefix
 * only on the first line of a chunk (ncat --chat) or lines split across reads do not matter.
 * Before the timed part the sender repeats a probe line until every receiver has seen one: the
 * server has then registered everyone and nothing sent later can be missed.
 * "stuck" adds one more client with a 4 KiB receive buffer that never reads.
 * Bounded: TIMEOUT_S in all; no new line for 3 s ends the run as "stalled".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 1000
#define STALL_S 3.0

static int port;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int dial(int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Per receiver: lines and probes seen, and the last 2 bytes of the previous read (a marker
   may be split between reads). */
struct rx {
  long lines;
  int probed;
  char tail[2];
  int tail_len;
};

static int fds[MAX_CLIENTS];
static struct rx rxs[MAX_CLIENTS];
static char buf[2 + 262144];

static long count_mark(const char *p, size_t n, const char *mark) {
  /* memchr for the marker's first byte, then compare: glibc's memmem was half the generator's CPU. */
  long c = 0;
  const char *end = p + n;
  while (end - p >= 3) {
    const char *hit = memchr(p, mark[0], end - p - 2);
    if (!hit) break;
    if (hit[1] == mark[1] && hit[2] == mark[2]) { c++; p = hit + 3; } else p = hit + 1;
  }
  return c;
}

/* Reads what receiver i has; returns -1 when it closed. */
static int drain(int i) {
  struct rx *r = &rxs[i];
  for (;;) {
    memcpy(buf, r->tail, r->tail_len);
    ssize_t n = read(fds[i], buf + r->tail_len, sizeof buf - 2);
    if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    if (n == 0) return -1;
    size_t len = r->tail_len + n;
    if (i > 0) {
      r->lines += count_mark(buf, len, "~M~");
      if (!r->probed && count_mark(buf, len, "~P~") > 0) r->probed = 1;
    }
    r->tail_len = len >= 2 ? 2 : len;
    memcpy(r->tail, buf + len - r->tail_len, r->tail_len);
  }
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: fanout PORT CLIENTS LINES TIMEOUT_S [stuck]\n"); return 2; }
  port = atoi(argv[1]);
  int clients = atoi(argv[2]);
  long lines = atol(argv[3]);
  double timeout = atof(argv[4]);
  int stuck = argc > 5 && !strcmp(argv[5], "stuck");
  if (clients < 2 || clients > MAX_CLIENTS || lines < 1) return 2;
  double deadline = now() + timeout;

  int ep = epoll_create1(0);
  for (int i = 0; i < clients; i++) {
    fds[i] = dial(0);
    if (fds[i] < 0) { printf("{\"error\":\"client %d could not connect\"}\n", i); return 1; }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  int stuck_fd = stuck ? dial(4096) : -1;
  if (stuck && stuck_fd < 0) { printf("{\"error\":\"the stuck client could not connect\"}\n"); return 1; }

  /* Probe until every receiver has been reached. */
  struct epoll_event evs[MAX_CLIENTS];
  const char probe[] = "~P~ probe\n";
  for (;;) {
    int all = 1;
    for (int i = 1; i < clients; i++) if (!rxs[i].probed) all = 0;
    if (all) break;
    if (now() > deadline) { printf("{\"error\":\"receivers not all reached by the probe\"}\n"); return 1; }
    if (write(fds[0], probe, sizeof probe - 1) < 0 && errno != EAGAIN) { printf("{\"error\":\"sender closed\"}\n"); return 1; }
    double until = now() + 0.1;
    while (now() < until) {
      int n = epoll_wait(ep, evs, MAX_CLIENTS, 20);
      for (int k = 0; k < n; k++) drain(evs[k].data.u32);
    }
  }
  usleep(100000);
  for (int i = 0; i < clients; i++) { drain(i); rxs[i].lines = 0; }

  size_t total = (size_t)lines * 64;
  char *payload = malloc(total);
  for (long i = 0; i < lines; i++) {
    char *l = payload + i * 64;
    int w = snprintf(l, 64, "~M~ %08ld ", i);
    memset(l + w, 'x', 63 - w);
    l[63] = '\n';
  }
  long expected = (long)(clients - 1) * lines;
  size_t sent = 0;
  struct epoll_event sev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = 0};
  epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &sev);

  double c0 = cpu_seconds(), t0 = now(), last_progress = t0, elapsed = -1;
  long last_total = -1;
  int stalled = 0, sender_open = 1;
  while (now() - t0 < timeout) {
    int n = epoll_wait(ep, evs, MAX_CLIENTS, 20);
    for (int k = 0; k < n; k++) {
      int i = evs[k].data.u32;
      if (i == 0 && (evs[k].events & EPOLLOUT) && sent < total) {
        ssize_t w = write(fds[0], payload + sent, total - sent);
        if (w > 0) sent += w;
        if (sent == total) {
          struct epoll_event in = {.events = EPOLLIN, .data.u32 = 0};
          epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &in);
        }
      }
      if ((evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && drain(i) < 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
        if (i == 0) sender_open = 0;
      }
    }
    long got = 0;
    int done = 1;
    for (int i = 1; i < clients; i++) {
      got += rxs[i].lines;
      if (rxs[i].lines < lines) done = 0;
    }
    if (done) { elapsed = now() - t0; break; }
    if (got != last_total) { last_total = got; last_progress = now(); }
    else if (now() - last_progress > STALL_S) { stalled = 1; break; }
  }
  double cpu = cpu_seconds() - c0;
  int complete = elapsed >= 0;
  if (!complete) elapsed = now() - t0;
  long delivered = 0, min_client = lines;
  for (int i = 1; i < clients; i++) {
    delivered += rxs[i].lines;
    if (rxs[i].lines < min_client) min_client = rxs[i].lines;
  }
  printf("{\"delivered\":%ld,\"expected\":%ld,\"complete\":%s,\"stalled\":%s,\"elapsed_s\":%.4f,\"rate\":%.0f,\"min_client\":%ld,\"sender_open\":%s,\"cpu_s\":%.3f}\n",
         delivered, expected, complete ? "true" : "false", stalled ? "true" : "false", elapsed, delivered / elapsed, min_client,
         sender_open ? "true" : "false", cpu);
  return 0;
}
