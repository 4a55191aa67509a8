/*
 * Steady traffic from many mirror sessions (issue 16): SESSIONS sessions at RATE datagrams per second
 * each, plus HEAVY sessions at HEAVY_RATE each, for SECONDS seconds, as AWS Traffic Mirroring sends them
 * (RFC 7348 section 5 header with only the I flag, outer UDP checksum 0).
 *
 * Every session has its own outer source, as behind a Network Load Balancer every session comes from its
 * own source ENI: session s sends from a socket bound to 127.64.0.0 + 1 + s (the whole of 127.0.0.0/8 is
 * local on Linux, so no raw socket and no root is needed) with VNI 5000 + s. The heavy sessions are
 * s = SESSIONS .. SESSIONS+HEAVY-1. One socket per session: the process raises RLIMIT_NOFILE to its hard
 * limit and needs SESSIONS + HEAVY + a few descriptors.
 *
 * The inner frame is vxlan_blast.c's: Ethernet + IPv4 + UDP, exactly INNER bytes, the UDP payload starting
 * with the session number and a per-session sequence number (big-endian uint32), so every datagram can be
 * found again in the receiver's files. Session s sends exactly RATE*SECONDS datagrams (HEAVY_RATE*SECONDS
 * for a heavy one), sequence numbers 0 upward, spread evenly over the run: each session has its own phase
 * within a second, so the 10,000 sessions' datagrams do not all leave in the same millisecond.
 *
 * RAMP (seconds, default 0): the light sessions start one after another over the first RAMP seconds
 * (session s at s/SESSIONS*RAMP), each still sending RATE*SECONDS datagrams over its own SECONDS; the
 * heavy ones start at once. 0 is a cold start: every session's first datagram in the same second.
 *
 * Prints one JSON line: {"sent":N,"errors":E,"elapsedNs":T,"maxLagMs":L}; maxLagMs is how far the sender
 * fell behind its schedule at worst (a sender that cannot keep up shows here, not as a lower rate).
 *
 * Build: gcc -O2 -o vxlan_steady vxlan_steady.c -lm
 * Run:   vxlan_steady DST_IP PORT SESSIONS RATE SECONDS INNER [HEAVY HEAVY_RATE [RAMP]]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BASE_VNI 5000
#define SOURCE_BASE 0x7f400001u /* 127.64.0.1 */
#define MAX_SESSIONS 65000
#define MAX_BATCH 256
#define TICK_NS 2000000L /* 2 ms */

static uint16_t ip_checksum(const uint8_t *h, int len) {
  uint32_t sum = 0;
  for (int i = 0; i < len; i += 2) sum += ((uint32_t)h[i] << 8) | h[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put16be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* VXLAN header + inner frame for session s, sequence seq (as vxlan_blast.c). Returns the UDP payload length. */
static int build(uint8_t *p, int inner, int s, uint32_t seq) {
  memset(p, 0, 8);
  p[0] = 0x08; /* I flag */
  uint32_t vni = BASE_VNI + (uint32_t)s;
  p[4] = (uint8_t)(vni >> 16);
  p[5] = (uint8_t)(vni >> 8);
  p[6] = (uint8_t)vni;
  uint8_t *f = p + 8;
  const uint8_t dst[6] = {0x02, 0, 0, 0, 1, (uint8_t)s}, src[6] = {0x02, 0, 0, 0, 2, (uint8_t)s};
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  put16be(f + 12, 0x0800);
  uint8_t *ip = f + 14;
  memset(ip, 0, 20);
  ip[0] = 0x45;
  put16be(ip + 2, (uint32_t)(inner - 14));
  ip[8] = 64;
  ip[9] = 17;
  put32be(ip + 12, 0x0a000001u | ((uint32_t)(s & 0xffff) << 8));
  put32be(ip + 16, 0x0a010001u | ((uint32_t)(s & 0xffff) << 8));
  put16be(ip + 10, ip_checksum(ip, 20));
  uint8_t *udp = ip + 20;
  put16be(udp, 40000 + (uint32_t)(s & 0x3fff));
  put16be(udp + 2, 5001);
  put16be(udp + 4, (uint32_t)(inner - 34));
  put16be(udp + 6, 0);
  uint8_t *pl = udp + 8;
  put32be(pl, (uint32_t)s);
  put32be(pl + 4, seq);
  for (int i = 8; i < inner - 42; i++) pl[i] = (uint8_t)(i * 7 + s);
  return 8 + inner;
}

static long long mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000ll + t.tv_nsec;
}

static uint8_t bufs[MAX_BATCH][9100];
static struct mmsghdr msgs[MAX_BATCH];
static struct iovec iov[MAX_BATCH];
static long errors;

/* Send n datagrams of session s, sequence numbers seq0 upward, on fd (batches of MAX_BATCH). */
static int send_n(int fd, int s, uint32_t seq0, long n, int inner) {
  while (n > 0) {
    int b = n < MAX_BATCH ? (int)n : MAX_BATCH;
    for (int i = 0; i < b; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = (size_t)build(bufs[i], inner, s, seq0 + (uint32_t)i);
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int done = 0;
    while (done < b) {
      int r = sendmmsg(fd, msgs + done, (unsigned)(b - done), 0);
      if (r < 0) {
        if (errno == EINTR || errno == ECONNREFUSED || errno == ENOBUFS || errno == EAGAIN) {
          errors++;
          if (errno != ECONNREFUSED) usleep(50);
          continue;
        }
        perror("sendmmsg");
        return -1;
      }
      done += r;
    }
    seq0 += (uint32_t)b;
    n -= b;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s DST_IP PORT SESSIONS RATE SECONDS INNER [HEAVY HEAVY_RATE [RAMP]]\n", argv[0]);
    return 64;
  }
  const char *dst = argv[1];
  int port = atoi(argv[2]);
  int sessions = atoi(argv[3]);
  double rate = atof(argv[4]);
  double seconds = atof(argv[5]);
  int inner = atoi(argv[6]);
  int heavy = argc > 7 ? atoi(argv[7]) : 0;
  double heavy_rate = argc > 8 ? atof(argv[8]) : 0;
  double ramp = argc > 9 ? atof(argv[9]) : 0;
  int all = sessions + heavy;
  if (sessions < 0 || heavy < 0 || all < 1 || all > MAX_SESSIONS || rate < 0 || heavy_rate < 0 || seconds <= 0 || ramp < 0 || inner < 64 || inner > 9000) {
    fprintf(stderr, "bad arguments\n");
    return 64;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sockaddr_in to;
  memset(&to, 0, sizeof(to));
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, dst, &to.sin_addr) != 1) {
    fprintf(stderr, "bad destination\n");
    return 64;
  }
  int *fds = calloc((size_t)all, sizeof(int));
  long *total = calloc((size_t)all, sizeof(long));
  long *done = calloc((size_t)all, sizeof(long));
  double *phase = calloc((size_t)all, sizeof(double));
  double *r = calloc((size_t)all, sizeof(double));
  double *start = calloc((size_t)all, sizeof(double));
  for (int s = 0; s < all; s++) {
    fds[s] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[s] < 0) {
      perror("socket (raise ulimit -n)");
      return 71;
    }
    struct sockaddr_in from;
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(SOURCE_BASE + (uint32_t)s);
    if (bind(fds[s], (struct sockaddr *)&from, sizeof(from)) != 0 || connect(fds[s], (struct sockaddr *)&to, sizeof(to)) != 0) {
      perror("bind/connect source");
      return 71;
    }
    r[s] = s < sessions ? rate : heavy_rate;
    total[s] = (long)(r[s] * seconds + 0.5);
    /* Spread the light sessions over one sending interval so they do not all send at once. */
    phase[s] = r[s] > 0 ? ((double)s / (double)all) / r[s] : 0;
    start[s] = s < sessions && sessions > 0 ? ramp * (double)s / (double)sessions : 0;
  }

  long long t0 = mono_ns(), next = t0;
  long sent = 0;
  double max_lag = 0;
  int finished = 0;
  while (!finished) {
    long long now = mono_ns();
    double t = (double)(now - t0) / 1e9;
    if (now - next > 0) {
      double lag = (double)(now - next) / 1e6;
      if (lag > max_lag) max_lag = lag;
    }
    finished = t >= seconds + ramp;
    for (int s = 0; s < all; s++) {
      if (!finished && t < start[s]) continue;
      long due = finished ? total[s] : (long)floor((t - start[s] - phase[s]) * r[s]) + 1;
      if (due > total[s]) due = total[s];
      if (due <= done[s]) continue;
      if (send_n(fds[s], s, (uint32_t)done[s], due - done[s], inner) != 0) return 74;
      sent += due - done[s];
      done[s] = due;
    }
    next += TICK_NS;
    long long wait = next - mono_ns();
    if (wait > 0) {
      struct timespec ts = {wait / 1000000000ll, wait % 1000000000ll};
      nanosleep(&ts, NULL);
    }
  }
  long long t1 = mono_ns();
  printf("{\"sent\":%ld,\"errors\":%ld,\"elapsedNs\":%lld,\"maxLagMs\":%.1f}\n", sent, errors, t1 - t0, max_lag);
  return 0;
}
