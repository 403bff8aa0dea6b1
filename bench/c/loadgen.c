/*
 * The bench's TCP load generator, in C so that it takes little of the 2 cores the relay under
 * test also needs. Prints one JSON object on stdout; cpu_s is its own user+system CPU time.
 *
 *   loadgen cps  PORT SECONDS CONCURRENCY SIZE   connect, send SIZE bytes, read them back, close
 *   loadgen cpsh PORT SECONDS CONCURRENCY SIZE   connect, send, half-close, read until EOF, close
 *   loadgen lat  PORT COUNT SIZE                 COUNT ping-pongs of SIZE bytes on one connection
 *   loadgen hold PORT COUNT                      open COUNT connections (each proves the path with
 *                                                a 1-byte echo), print a line, hold until stdin closes
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int port;
static double deadline;
static int size;
static int halfclose;
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
  return fd;
}

/* Reads exactly n bytes (or, with n < 0, until EOF); returns the count read, -1 on error/timeout. */
static long read_n(int fd, char *buf, long n, long cap) {
  long got = 0;
  for (;;) {
    if (n >= 0 && got >= n) return got;
    if (got >= cap) return -1;
    ssize_t r = read(fd, buf + got, cap - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return n < 0 ? got : -1;
    got += r;
  }
}

static void *cps_worker(void *arg) {
  (void)arg;
  char out[65536], in[65536];
  memset(out, 'x', sizeof out);
  while (now() < deadline) {
    int fd = dial();
    if (fd < 0) { errors++; usleep(1000); continue; }
    int ok = write(fd, out, size) == size;
    if (ok && halfclose) {
      shutdown(fd, SHUT_WR);
      ok = read_n(fd, in, -1, sizeof in) == size;
    } else if (ok) {
      ok = read_n(fd, in, size, sizeof in) == size;
    }
    close(fd);
    if (ok) ops++; else errors++;
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int run_cps(int seconds, int conc) {
  pthread_t th[256];
  if (conc > 256) conc = 256;
  double t0 = now(), c0 = cpu_seconds();
  deadline = t0 + seconds;
  for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, cps_worker, NULL);
  for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
  double el = now() - t0;
  printf("{\"ops\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"cpu_s\":%.3f}\n", (long)ops, (long)errors, el, ops / el, cpu_seconds() - c0);
  return 0;
}

static int run_lat(int count) {
  int fd = dial();
  if (fd < 0) { printf("{\"error\":\"connect failed\"}\n"); return 1; }
  char out[65536], in[65536];
  memset(out, 'p', sizeof out);
  int warm = count / 10 < 200 ? count / 10 : 200;
  double *rtt = calloc(count, sizeof *rtt);
  double c0 = cpu_seconds();
  for (int i = -warm; i < count; i++) {
    double t = now();
    if (write(fd, out, size) != size || read_n(fd, in, size, sizeof in) != size) {
      printf("{\"error\":\"exchange %d failed\"}\n", i);
      return 1;
    }
    if (i >= 0) rtt[i] = (now() - t) * 1e6;
  }
  double cpu = cpu_seconds() - c0;
  close(fd);
  qsort(rtt, count, sizeof *rtt, cmp_double);
  double sum = 0;
  for (int i = 0; i < count; i++) sum += rtt[i];
  printf("{\"count\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"cpu_s\":%.3f}\n", count,
         rtt[count / 2], rtt[(int)(count * 0.99)], rtt[(int)(count * 0.999)], rtt[count - 1], sum / count, cpu);
  return 0;
}

static int run_hold(int count) {
  int *fds = calloc(count, sizeof *fds);
  char b = 'h', in[16];
  int open_ok = 0;
  for (int i = 0; i < count; i++) {
    int fd = dial();
    if (fd < 0 || write(fd, &b, 1) != 1 || read_n(fd, in, 1, sizeof in) != 1) {
      if (fd >= 0) close(fd);
      continue;
    }
    fds[open_ok++] = fd;
  }
  printf("{\"held\":%d,\"asked\":%d}\n", open_ok, count);
  fflush(stdout);
  /* Hold until the harness closes our stdin. */
  char sink[64];
  while (read(0, sink, sizeof sink) > 0) {}
  for (int i = 0; i < open_ok; i++) close(fds[i]);
  return 0;
}

int main(int argc, char **argv) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
  if (argc < 4) { fprintf(stderr, "usage: see loadgen.c\n"); return 2; }
  port = atoi(argv[2]);
  if (!strcmp(argv[1], "cps") || !strcmp(argv[1], "cpsh")) {
    if (argc < 6) return 2;
    halfclose = !strcmp(argv[1], "cpsh");
    size = atoi(argv[5]);
    if (size < 1 || size > 65536) return 2;
    return run_cps(atoi(argv[3]), atoi(argv[4]));
  }
  if (!strcmp(argv[1], "lat")) {
    if (argc < 5) return 2;
    size = atoi(argv[4]);
    if (size < 1 || size > 65536) return 2;
    return run_lat(atoi(argv[3]));
  }
  if (!strcmp(argv[1], "hold")) return run_hold(atoi(argv[3]));
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
