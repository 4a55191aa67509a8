/*
 * The C reference receiver for `npm run bench`: what a small, careful C program does with AWS Traffic
 * Mirroring traffic, as the yardstick for mirrorguard's receivers. It
 *   - reads the UDP socket with recvmmsg(2) in batches (MSG_DONTWAIT, after poll(2) says readable),
 *     with SO_TIMESTAMPNS kernel receive timestamps and a large SO_RCVBUF (SO_RCVBUFFORCE if allowed);
 *   - decapsulates VXLAN (RFC 7348 section 5: 8-byte header, I flag, 24-bit VNI) and takes the
 *     inner frame's original length from its IPv4 total length when the frame was truncated;
 *   - finds the session by (outer source IPv4, VNI) in an open-addressing table;
 *   - appends a pcap record (nanosecond format, draft-ietf-opsawg-pcap sections 4-5) to that session's
 *     1 MiB buffer and, when it is full, hashes the whole buffer with SHA-256 in one update (OpenSSL's
 *     libcrypto, the library Node's crypto.Hash uses, with the same SHA-NI/AVX2 code paths) and
 *     write(2)s it: one file per session, one running SHA-256 per file, as mirrorguard keeps.
 * It does what mirrorguard's hot path does minus the inner L3/L4 decoding, the detector hook and the
 * catalog: a floor, not a competitor. HASH=none skips the SHA-256 (the "no hash" row: what the hash costs).
 *
 * Control protocol (shared with bench/child.mjs), one line per command on stdin, one reply on stdout:
 *   ready {"port":P,"recvBufferBytes":B}        printed once bound
 *   mark      -> marked {"monoNs":..,"cpuUs":..,"packets":..}
 *   target N  -> done {"monoNs":..,"cpuUs":..,"packets":..}  once N datagrams have been processed
 *   flush     -> flushed {"monoNs":..,"cpuUs":..,"packets":..}  after every partly filled buffer is hashed and written
 *   quit      -> closed {...counters...}           after every file is written and closed
 *
 * Build: gcc -O2 -o ref_receiver ref_receiver.c -lcrypto   (OpenSSL 3; see the declarations below when
 *        its headers are not installed: then link with -l:libcrypto.so.3)
 * Run:   ref_receiver HOST PORT OUTDIR RCVBUF_BYTES [BATCH [sha256|none]]   (BATCH default 64, hash default sha256)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include) && __has_include(<openssl/evp.h>)
#include <openssl/evp.h>
#else
/* No libssl-dev: the EVP digest API of OpenSSL 3's libcrypto.so.3 (present wherever the openssl package
 * is), declared by hand. These six functions and their opaque types are stable across OpenSSL 3.x. */
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_md_st EVP_MD;
typedef struct engine_st ENGINE;
EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
const EVP_MD *EVP_sha256(void);
int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt);
int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s);
#endif

#define MAX_BATCH 1024
#define SLOT_BYTES 9216
#define TABLE_SIZE 32768 /* power of two, > the sessions a run can have (the many-sessions row has 10,000) */
#define FILE_BUF_BYTES (1 << 20)
#define CMSG_BYTES 64

struct session {
  uint64_t key; /* src4 << 24 | vni, plus one so 0 means empty */
  int fd;
  uint32_t len;
  uint8_t *buf;
  uint64_t packets;
  EVP_MD_CTX *sha; /* NULL with HASH=none */
};

static struct session table[TABLE_SIZE];
static const char *outdir;
static int hashing = 1;
static uint64_t processed, written, dropped_decode, truncated, files;
static uint32_t kernel_drops;

static uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_us(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (uint64_t)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000ull + (uint64_t)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); } /* little-endian host: pcap written in host order */
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void flush_session(struct session *s) {
  /* One update per buffer, as mirrorguard's writer does before handing the buffer to the disk. */
  if (s->sha != NULL && s->len > 0 && EVP_DigestUpdate(s->sha, s->buf, s->len) != 1) {
    fprintf(stderr, "EVP_DigestUpdate failed\n");
    exit(70);
  }
  uint32_t off = 0;
  while (off < s->len) {
    ssize_t w = write(s->fd, s->buf + off, s->len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      perror("write");
      exit(74);
    }
    off += (uint32_t)w;
  }
  s->len = 0;
}

static struct session *session_for(uint32_t src4, uint32_t vni) {
  uint64_t key = (((uint64_t)src4 << 24) | vni) + 1;
  uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & (TABLE_SIZE - 1);
  for (;;) {
    struct session *s = &table[h];
    if (s->key == key) return s;
    if (s->key == 0) {
      char path[4096];
      snprintf(path, sizeof(path), "%s/ref-%u.%u.%u.%u-%u.pcap", outdir, src4 >> 24, (src4 >> 16) & 255, (src4 >> 8) & 255, src4 & 255, vni);
      s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (s->fd < 0) {
        perror(path);
        exit(73);
      }
      s->buf = malloc(FILE_BUF_BYTES);
      if (s->buf == NULL) {
        perror("malloc");
        exit(71);
      }
      s->sha = NULL;
      if (hashing) {
        s->sha = EVP_MD_CTX_new();
        if (s->sha == NULL || EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1) {
          fprintf(stderr, "EVP_DigestInit_ex(sha256) failed\n");
          exit(70);
        }
      }
      s->key = key;
      /* Global header: nanosecond magic, version 2.4, snaplen 262144, LINKTYPE_ETHERNET. */
      put32(s->buf, 0xa1b23c4d);
      put16(s->buf + 4, 2);
      put16(s->buf + 6, 4);
      put32(s->buf + 8, 0);
      put32(s->buf + 12, 0);
      put32(s->buf + 16, 262144);
      put32(s->buf + 20, 1);
      s->len = 24;
      files++;
      return s;
    }
    h = (h + 1) & (TABLE_SIZE - 1);
  }
}

static void handle(const uint8_t *p, uint32_t len, uint32_t src4, const struct timespec *ts) {
  processed++;
  if (len < 8 || (p[0] & 0x08) == 0) {
    dropped_decode++;
    return;
  }
  uint32_t vni = ((uint32_t)p[4] << 16) | ((uint32_t)p[5] << 8) | p[6];
  const uint8_t *f = p + 8;
  uint32_t caplen = len - 8;
  if (caplen < 14) {
    dropped_decode++;
    return;
  }
  uint32_t orig = caplen;
  if (f[12] == 0x08 && f[13] == 0x00 && caplen >= 34) {
    uint32_t iplen = ((uint32_t)f[16] << 8) | f[17];
    if (14 + iplen > orig) orig = 14 + iplen;
  }
  struct session *s = session_for(src4, vni);
  if (s->len + 16 + caplen > FILE_BUF_BYTES) flush_session(s);
  uint8_t *r = s->buf + s->len;
  put32(r, (uint32_t)ts->tv_sec);
  put32(r + 4, (uint32_t)ts->tv_nsec);
  put32(r + 8, caplen);
  put32(r + 12, orig);
  memcpy(r + 16, f, caplen);
  s->len += 16 + caplen;
  s->packets++;
  written++;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s HOST PORT OUTDIR RCVBUF_BYTES [BATCH [sha256|none]]\n", argv[0]);
    return 64;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  outdir = argv[3];
  int rcvbuf = atoi(argv[4]);
  int batch = argc > 5 ? atoi(argv[5]) : 64;
  if (batch < 1 || batch > MAX_BATCH) batch = 64;
  if (argc > 6) hashing = strcmp(argv[6], "none") != 0;
  /* One descriptor per session file: the many-sessions row opens 10,000. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    return 71;
  }
  int one = 1;
  if (rcvbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)); /* fails quietly without CAP_NET_ADMIN */
  }
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    perror("bind");
    return 71;
  }
  socklen_t al = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &al);
  int granted = 0;
  socklen_t gl = sizeof(granted);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &gl);
  printf("ready {\"port\":%d,\"recvBufferBytes\":%d,\"pid\":%d}\n", ntohs(a.sin_port), granted, (int)getpid());
  fflush(stdout);

  static uint8_t data[MAX_BATCH][SLOT_BYTES];
  static uint8_t ctl[MAX_BATCH][CMSG_BYTES];
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  static struct sockaddr_in names[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = data[i];
    iov[i].iov_len = SLOT_BYTES;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &names[i];
  }

  uint64_t target = UINT64_MAX;
  char line[256];
  size_t line_len = 0;
  struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 71;
    }
    if (pfd[0].revents & POLLIN) {
      for (;;) {
        for (int i = 0; i < batch; i++) {
          msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
          msgs[i].msg_hdr.msg_control = ctl[i];
          msgs[i].msg_hdr.msg_controllen = CMSG_BYTES;
        }
        int n = recvmmsg(fd, msgs, (unsigned)batch, MSG_DONTWAIT, NULL);
        if (n <= 0) break;
        struct timespec now = {0, 0};
        for (int i = 0; i < n; i++) {
          struct msghdr *h = &msgs[i].msg_hdr;
          const struct timespec *ts = NULL;
          for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level != SOL_SOCKET) continue;
            if (c->cmsg_type == SCM_TIMESTAMPNS) ts = (const struct timespec *)CMSG_DATA(c);
            else if (c->cmsg_type == SO_RXQ_OVFL) memcpy(&kernel_drops, CMSG_DATA(c), 4);
          }
          if (ts == NULL) {
            if (now.tv_sec == 0) clock_gettime(CLOCK_REALTIME, &now);
            ts = &now;
          }
          if (h->msg_flags & MSG_TRUNC) {
            processed++;
            truncated++;
            continue;
          }
          handle(data[i], msgs[i].msg_len, ntohl(names[i].sin_addr.s_addr), ts);
        }
        if (processed >= target) {
          printf("done {\"monoNs\":%llu,\"cpuUs\":%llu,\"packets\":%llu}\n", (unsigned long long)mono_ns(), (unsigned long long)cpu_us(), (unsigned long long)processed);
          fflush(stdout);
          target = UINT64_MAX;
        }
        if (n < batch) break;
      }
    }
    if (pfd[1].revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(0, line + line_len, sizeof(line) - 1 - line_len);
      if (r <= 0) return 0; /* the parent went away */
      line_len += (size_t)r;
      char *nl;
      while ((nl = memchr(line, '\n', line_len)) != NULL) {
        *nl = 0;
        if (strncmp(line, "target ", 7) == 0) {
          target = strtoull(line + 7, NULL, 10);
          if (processed >= target) {
            printf("done {\"monoNs\":%llu,\"cpuUs\":%llu,\"packets\":%llu}\n", (unsigned long long)mono_ns(), (unsigned long long)cpu_us(), (unsigned long long)processed);
            target = UINT64_MAX;
          }
        } else if (strcmp(line, "mark") == 0) {
          printf("marked {\"monoNs\":%llu,\"cpuUs\":%llu,\"packets\":%llu}\n", (unsigned long long)mono_ns(), (unsigned long long)cpu_us(), (unsigned long long)processed);
        } else if (strcmp(line, "flush") == 0) {
          for (int i = 0; i < TABLE_SIZE; i++)
            if (table[i].key) flush_session(&table[i]);
          printf("flushed {\"monoNs\":%llu,\"cpuUs\":%llu,\"packets\":%llu}\n", (unsigned long long)mono_ns(), (unsigned long long)cpu_us(), (unsigned long long)processed);
        } else if (strcmp(line, "quit") == 0) {
          for (int i = 0; i < TABLE_SIZE; i++)
            if (table[i].key) {
              flush_session(&table[i]);
              close(table[i].fd);
              if (table[i].sha != NULL) {
                unsigned char md[32];
                unsigned int mdlen = 0;
                EVP_DigestFinal_ex(table[i].sha, md, &mdlen);
                EVP_MD_CTX_free(table[i].sha);
              }
            }
          printf("closed {\"processed\":%llu,\"written\":%llu,\"decodeDrops\":%llu,\"truncated\":%llu,\"files\":%llu,\"kernelDrops\":%u,\"hash\":\"%s\"}\n",
                 (unsigned long long)processed, (unsigned long long)written, (unsigned long long)dropped_decode, (unsigned long long)truncated,
                 (unsigned long long)files, kernel_drops, hashing ? "sha256" : "none");
          fflush(stdout);
          return 0;
        }
        fflush(stdout);
        size_t rest = line_len - (size_t)(nl + 1 - line);
        memmove(line, nl + 1, rest);
        line_len = rest;
      }
      if (line_len == sizeof(line) - 1) line_len = 0;
    }
  }
}
