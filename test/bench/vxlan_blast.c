/*
 * Traffic for `npm run bench`: VXLAN datagrams as AWS Traffic Mirroring sends them (RFC 7348 section 5
 * header with only the I flag, outer UDP checksum 0), from SESSIONS distinct outer sources on loopback.
 * The whole of 127.0.0.0/8 is local on Linux, so session s sends from a socket bound to
 * 127.0.0.(2 + s % 200) with VNI BASE_VNI+s: one (source IP, VNI) pair per session, no raw sockets
 * needed. Up to 200 sessions each have their own source; past that (the many-sessions row: 10,000
 * VNIs) the sources are shared and the VNI alone keeps the pairs apart.
 *
 * Each inner frame is Ethernet + IPv4 + UDP, exactly INNER bytes long, with a correct IPv4 total length
 * and header checksum. Its UDP payload starts with the session number and a per-session sequence
 * number (both big-endian uint32), so the benchmark can check that every datagram sent is in the files.
 *
 * Sending is sendmmsg(2) in batches of BATCH to one session, then the next, round robin. As fast as it
 * can, or paced: with BLAST_PPS=R in the environment, batch k is sent at t0 + k * BATCH / R (an absolute
 * clock_nanosleep before each batch), so R packets per second arrive in bursts of BATCH (the live mode
 * of `npm run bench`; a small BATCH spreads them as a busy mirror target sees them).
 * Prints one JSON line: {"sent":N,"errors":E,"elapsedNs":T}.
 *
 * Build: gcc -O2 -o vxlan_blast vxlan_blast.c
 * Run:   vxlan_blast DST_IP PORT COUNT SESSIONS INNER [SEQ_START] [BATCH] [one-vni]
 * one-vni: every session sends with VNI BASE_VNI (one mirror session, many sources: the extraction row).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BASE_VNI 5000
#define MAX_SOURCES 200
#define MAX_SESSIONS 65536
#define MAX_BATCH 1024

static int one_vni;

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

/* VXLAN header + inner frame for session s, sequence seq. Returns the UDP payload length. */
static int build(uint8_t *p, int inner, int s, uint32_t seq) {
  memset(p, 0, 8);
  p[0] = 0x08; /* I flag */
  uint32_t vni = one_vni ? BASE_VNI : BASE_VNI + (uint32_t)s;
  p[4] = (uint8_t)(vni >> 16);
  p[5] = (uint8_t)(vni >> 8);
  p[6] = (uint8_t)vni;
  uint8_t *f = p + 8;
  /* Ethernet: locally administered MACs, EtherType IPv4. */
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
  put32be(ip + 12, 0x0a000001u | ((uint32_t)s << 8)); /* 10.0.s.1 */
  put32be(ip + 16, 0x0a010001u | ((uint32_t)s << 8)); /* 10.1.s.1 */
  put16be(ip + 10, ip_checksum(ip, 20));
  uint8_t *udp = ip + 20;
  put16be(udp, 40000 + (uint32_t)s);
  put16be(udp + 2, 5001);
  put16be(udp + 4, (uint32_t)(inner - 34));
  put16be(udp + 6, 0);
  uint8_t *pl = udp + 8;
  put32be(pl, (uint32_t)s);
  put32be(pl + 4, seq);
  for (int i = 8; i < inner - 42; i++) pl[i] = (uint8_t)(i * 7 + s);
  return 8 + inner;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s DST_IP PORT COUNT SESSIONS INNER [SEQ_START] [BATCH]\n", argv[0]);
    return 64;
  }
  const char *dst = argv[1];
  int port = atoi(argv[2]);
  long count = atol(argv[3]);
  int sessions = atoi(argv[4]);
  int inner = atoi(argv[5]);
  uint32_t seq0 = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 0;
  int batch = argc > 7 ? atoi(argv[7]) : 64;
  one_vni = argc > 8 && strcmp(argv[8], "one-vni") == 0;
  if (sessions < 1 || sessions > MAX_SESSIONS || inner < 64 || inner > 9000 || batch < 1 || batch > MAX_BATCH || count < 0) {
    fprintf(stderr, "bad arguments\n");
    return 64;
  }
  struct sockaddr_in to;
  memset(&to, 0, sizeof(to));
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, dst, &to.sin_addr) != 1) {
    fprintf(stderr, "bad destination\n");
    return 64;
  }
  int fds[MAX_SOURCES];
  int sources = sessions < MAX_SOURCES ? sessions : MAX_SOURCES;
  for (int s = 0; s < sources; s++) {
    fds[s] = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(fds[s], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    struct sockaddr_in from;
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)s);
    if (bind(fds[s], (struct sockaddr *)&from, sizeof(from)) != 0) {
      perror("bind source");
      return 71;
    }
    if (connect(fds[s], (struct sockaddr *)&to, sizeof(to)) != 0) {
      perror("connect");
      return 71;
    }
  }
  static uint8_t bufs[MAX_BATCH][9100];
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  static uint32_t seq[MAX_SESSIONS];
  for (int s = 0; s < sessions; s++) seq[s] = seq0;

  const char *pps_env = getenv("BLAST_PPS");
  double pps = pps_env != NULL ? atof(pps_env) : 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long sent = 0, errors = 0;
  int s = 0;
  while (sent < count) {
    int n = (int)((count - sent) < batch ? (count - sent) : batch);
    if (pps > 0) {
      long long due_ns = (long long)((double)sent * 1e9 / pps);
      struct timespec due = {t0.tv_sec + (time_t)(due_ns / 1000000000ll), t0.tv_nsec + (long)(due_ns % 1000000000ll)};
      if (due.tv_nsec >= 1000000000l) {
        due.tv_sec++;
        due.tv_nsec -= 1000000000l;
      }
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
      }
    }
    for (int i = 0; i < n; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = (size_t)build(bufs[i], inner, s, seq[s]++);
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int done = 0;
    while (done < n) {
      int r = sendmmsg(fds[s % MAX_SOURCES], msgs + done, (unsigned)(n - done), 0);
      if (r < 0) {
        /* ECONNREFUSED: an ICMP port unreachable came back (nothing bound, as with tcpdump). Retry. */
        if (errno == EINTR || errno == ECONNREFUSED || errno == ENOBUFS || errno == EAGAIN) {
          errors++;
          if (errno != ECONNREFUSED) usleep(100);
          continue;
        }
        perror("sendmmsg");
        return 74;
      }
      done += r;
    }
    sent += n;
    s = (s + 1) % sessions;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec);
  printf("{\"sent\":%ld,\"errors\":%ld,\"elapsedNs\":%lld}\n", sent, errors, ns);
  return 0;
}
