/*
 * The proxy bench's load generator: like loadgen, but each connection may first ask a SOCKS5
 * proxy for a tunnel (no login, CONNECT 127.0.0.1:TARGET), so SOCKS proxies and plain relays are
 * measured with the same client. TARGET 0 means "no handshake": the port is a plain relay.
 * Prints one JSON object on stdout; cpu_s is its own user+system CPU time.
 *
 *   socksload cps  PORT TARGET SECONDS CONCURRENCY SIZE   handshake, send SIZE bytes, read them back, close
 *   socksload tput PORT TARGET SECONDS STREAMS            per stream: write 64 KiB blocks for SECONDS,
 *                                                         half-close, wait for the EOF that says the sink
 *                                                         read it all; bytes written / time to that EOF
 *   socksload sink                                        a backend for tput: listens on 127.0.0.1:0,
 *                                                         prints the port, reads and drops everything,
 *                                                         closes at the client's EOF
 *
 * Everything goes to 127.0.0.1. Every blocking call has a 5 s timeout, every loop a bound.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, target, size;
static double deadline;
static atomic_long ops, errors;

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

static int read_exact(int fd, unsigned char *buf, int n) {
  int got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += r;
  }
  return got;
}

/* Connects to the proxy (or relay) and, with a target, opens the SOCKS5 tunnel. */
static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  if (target == 0) return fd;
  /* What curl and browsers do: the greeting, wait for the choice, then the request. */
  unsigned char hello[3] = {5, 1, 0}, reply[10];
  unsigned char req[10] = {5, 1, 0, 1, 127, 0, 0, 1, (unsigned char)(target >> 8), (unsigned char)(target & 0xff)};
  if (write(fd, hello, 3) != 3 || read_exact(fd, reply, 2) != 2 || reply[1] != 0 || write(fd, req, 10) != 10 || read_exact(fd, reply, 10) != 10 || reply[1] != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void *cps_worker(void *arg) {
  (void)arg;
  unsigned char out[65536], in[65536];
  memset(out, 'x', sizeof out);
  while (now() < deadline) {
    int fd = dial();
    if (fd < 0) { errors++; usleep(1000); continue; }
    int ok = write(fd, out, size) == size && read_exact(fd, in, size) == size;
    close(fd);
    if (ok) ops++; else errors++;
  }
  return NULL;
}

static atomic_long bytes_sent;
static double finished_at;

static void *tput_stream(void *arg) {
  (void)arg;
  static __thread unsigned char out[1 << 16];
  memset(out, 'y', sizeof out);
  int fd = dial();
  if (fd < 0) { errors++; return NULL; }
  long sent = 0;
  while (now() < deadline) {
    ssize_t w = write(fd, out, sizeof out);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { errors++; break; }
    sent += w;
  }
  shutdown(fd, SHUT_WR);
  /* The sink closes once it has read everything: its EOF, passed back by the relay, proves delivery. */
  unsigned char in[4096];
  for (;;) {
    ssize_t r = read(fd, in, sizeof in);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { errors++; break; }
    if (r == 0) break;
  }
  close(fd);
  bytes_sent += sent;
  double t = now();
  if (t > finished_at) finished_at = t;
  return NULL;
}

static void *sink_conn(void *arg) {
  int fd = (int)(long)arg;
  static __thread unsigned char in[1 << 16];
  for (;;) {
    ssize_t r = read(fd, in, sizeof in);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
  }
  close(fd);
  return NULL;
}

static int run_sink(void) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1024) < 0 || getsockname(ls, (struct sockaddr *)&a, &len) < 0) {
    perror("sink");
    return 1;
  }
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) { if (errno == EINTR) continue; usleep(1000); continue; }
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, sink_conn, (void *)(long)fd) != 0) close(fd);
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "sink")) return run_sink();
  if (argc < 6) {
    fprintf(stderr, "usage: socksload cps|tput PORT TARGET SECONDS N [SIZE]\n");
    return 2;
  }
  port = atoi(argv[2]);
  target = atoi(argv[3]);
  int seconds = atoi(argv[4]), n = atoi(argv[5]);
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  pthread_t th[256];
  double t0 = now(), c0 = cpu_seconds();
  deadline = t0 + seconds;
  if (!strcmp(argv[1], "cps")) {
    size = argc > 6 ? atoi(argv[6]) : 64;
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, cps_worker, NULL);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double el = now() - t0;
    printf("{\"ops\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"cpu_s\":%.3f}\n", (long)ops, (long)errors, el, ops / el, cpu_seconds() - c0);
    return 0;
  }
  if (!strcmp(argv[1], "tput")) {
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, tput_stream, NULL);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double el = (finished_at > t0 ? finished_at : now()) - t0;
    printf("{\"bytes\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"gbps\":%.4f,\"cpu_s\":%.3f}\n", (long)bytes_sent, (long)errors, el, bytes_sent * 8 / el / 1e9, cpu_seconds() - c0);
    return 0;
  }
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
