/*
 * The C capture-ring reference for `npm run bench`: ref_receiver.c's work (VXLAN decapsulation, session
 * table, pcap records in 1 MiB buffers, SHA-256 of each buffer, write(2)) fed by an AF_PACKET socket with
 * a TPACKET_V3 ring instead of recvmmsg, as mirrorguard's af-packet receiver (native/src/ring.cc) is:
 *   - the same kernel filter: IPv4 UDP to HOST:PORT, addressed to this host (classic BPF), outgoing
 *     frames ignored (PACKET_IGNORE_OUTGOING), the UDP port held by a socket that is never read;
 *   - BLOCKS blocks of BLOCK_BYTES, retired after RETIRE_MS; poll(2) wakes us per retired block and we
 *     walk every packet in place, then hand the block back (TP_STATUS_KERNEL);
 *   - kernel timestamps (nanoseconds) from the ring; ring drops from PACKET_STATISTICS.
 * The same control protocol as ref_receiver.c (ready / mark / target / flush / quit), and the same
 * "closed" line, with kernelDrops = the ring's tp_drops.
 *
 * Build: gcc -O2 -o ref_ring ref_ring.c -lcrypto   (or -l:libcrypto.so.3, as ref_receiver.c)
 * Run:   ref_ring HOST PORT OUTDIR [BLOCK_BYTES [BLOCKS [RETIRE_MS [sha256|none]]]]   (1 MiB, 64, 10 ms)
 * Needs CAP_NET_RAW. HOST must be an IPv4 address; 127.x reads lo.
 */
#define main ref_receiver_main
#include "ref_receiver.c"
#undef main

#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static uint64_t ring_drops, ring_packets, ring_freezes;

static void read_ring_stats(int fd) {
  struct tpacket_stats_v3 st;
  socklen_t len = sizeof(st);
  memset(&st, 0, sizeof(st));
  if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
    ring_packets += st.tp_packets;
    ring_drops += st.tp_drops;
    ring_freezes += st.tp_freeze_q_cnt;
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s HOST PORT OUTDIR [BLOCK_BYTES [BLOCKS [RETIRE_MS [sha256|none]]]]\n", argv[0]);
    return 64;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  outdir = argv[3];
  unsigned block_bytes = argc > 4 ? (unsigned)atoi(argv[4]) : 1u << 20;
  unsigned blocks = argc > 5 ? (unsigned)atoi(argv[5]) : 64;
  unsigned retire_ms = argc > 6 ? (unsigned)atoi(argv[6]) : 10;
  if (argc > 7) hashing = strcmp(argv[7], "none") != 0;
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  /* Hold the UDP port, smallest buffer, never read. */
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int zero = 0;
  setsockopt(udp, SOL_SOCKET, SO_RCVBUF, &zero, sizeof(zero));
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(udp, (struct sockaddr *)&a, sizeof(a)) != 0) {
    perror("bind");
    return 71;
  }
  socklen_t al = sizeof(a);
  getsockname(udp, (struct sockaddr *)&a, &al);
  port = ntohs(a.sin_port);
  uint32_t dst = ntohl(a.sin_addr.s_addr);

  /* The filter: pkttype HOST, IPv4, UDP, not a fragment, dst port, dst host (src/ingest/ring-filter.ts
   * emits the same for one target, except that it keeps fragments to count them). Jumps are relative. */
  struct sock_filter prog[] = {
      /*  0 */ {0x30, 0, 0, 0xfffff004},   /* ldb pkttype */
      /*  1 */ {0x15, 0, 11, 0},           /* PACKET_HOST, else 13 */
      /*  2 */ {0x28, 0, 0, 12},           /* ldh ethertype */
      /*  3 */ {0x15, 0, 9, 0x0800},       /* IPv4, else 13 */
      /*  4 */ {0x30, 0, 0, 23},           /* ldb protocol */
      /*  5 */ {0x15, 0, 7, 17},           /* UDP, else 13 */
      /*  6 */ {0x28, 0, 0, 20},           /* ldh flags+offset */
      /*  7 */ {0x45, 5, 0, 0x3fff},       /* a fragment: 13 */
      /*  8 */ {0xb1, 0, 0, 14},           /* x = IP header length */
      /*  9 */ {0x48, 0, 0, 16},           /* ldh dst port */
      /* 10 */ {0x15, 0, 2, (uint32_t)port},
      /* 11 */ {0x20, 0, 0, 30},           /* ld dst address */
      /* 12 */ {0x15, 1, 0, dst},          /* 14, else 13 */
      /* 13 */ {0x06, 0, 0, 0},
      /* 14 */ {0x06, 0, 0, 262144},
  };
  struct sock_fprog fprog = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};

  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket(AF_PACKET)");
    return 71;
  }
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) != 0) {
    perror("SO_ATTACH_FILTER");
    return 71;
  }
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
  int v = TPACKET_V3;
  setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v));
  struct tpacket_req3 req;
  memset(&req, 0, sizeof(req));
  req.tp_block_size = block_bytes;
  req.tp_block_nr = blocks;
  req.tp_frame_size = 2048;
  req.tp_frame_nr = (block_bytes / 2048) * blocks;
  req.tp_retire_blk_tov = retire_ms;
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) {
    perror("PACKET_RX_RING");
    return 71;
  }
  uint8_t *ring = mmap(NULL, (size_t)block_bytes * blocks, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (ring == MAP_FAILED) {
    perror("mmap");
    return 71;
  }
  struct sockaddr_ll ll;
  memset(&ll, 0, sizeof(ll));
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_IP);
  ll.sll_ifindex = (dst >> 24) == 127 ? (int)if_nametoindex("lo") : 0;
  if (bind(fd, (struct sockaddr *)&ll, sizeof(ll)) != 0) {
    perror("bind(AF_PACKET)");
    return 71;
  }
  printf("ready {\"port\":%d,\"recvBufferBytes\":%u,\"pid\":%d}\n", port, block_bytes * blocks, (int)getpid());
  fflush(stdout);

  uint64_t target = UINT64_MAX;
  char line[256];
  size_t line_len = 0;
  unsigned cur = 0;
  struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN | POLLERR}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 71;
    }
    for (;;) {
      struct tpacket_block_desc *b = (struct tpacket_block_desc *)(ring + (size_t)cur * block_bytes);
      if ((__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
      uint32_t n = b->hdr.bh1.num_pkts;
      const uint8_t *p = (const uint8_t *)b + b->hdr.bh1.offset_to_first_pkt;
      for (uint32_t i = 0; i < n; i++) {
        const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)p;
        const uint8_t *ip = p + h->tp_net;
        if (h->tp_snaplen < h->tp_len) {
          processed++;
          truncated++;
        } else {
          uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
          const uint8_t *u = ip + ihl;
          uint32_t ulen = ((uint32_t)u[4] << 8) | u[5];
          uint32_t src4 = ((uint32_t)ip[12] << 24) | ((uint32_t)ip[13] << 16) | ((uint32_t)ip[14] << 8) | ip[15];
          struct timespec ts = {h->tp_sec, h->tp_nsec};
          handle(u + 8, ulen >= 8 ? ulen - 8 : 0, src4, &ts);
        }
        p += h->tp_next_offset;
      }
      __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      cur = (cur + 1) % blocks;
      if (processed >= target) {
        printf("done {\"monoNs\":%llu,\"cpuUs\":%llu,\"packets\":%llu}\n", (unsigned long long)mono_ns(), (unsigned long long)cpu_us(), (unsigned long long)processed);
        fflush(stdout);
        target = UINT64_MAX;
      }
    }
    if (pfd[1].revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(0, line + line_len, sizeof(line) - 1 - line_len);
      if (r <= 0) return 0;
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
          read_ring_stats(fd);
          for (int i = 0; i < TABLE_SIZE; i++)
            if (table[i].key) {
              flush_session(&table[i]);
              close(table[i].fd);
            }
          printf("closed {\"processed\":%llu,\"written\":%llu,\"decodeDrops\":%llu,\"truncated\":%llu,\"files\":%llu,\"kernelDrops\":%llu,\"ringPackets\":%llu,\"freezes\":%llu,\"hash\":\"%s\"}\n",
                 (unsigned long long)processed, (unsigned long long)written, (unsigned long long)dropped_decode, (unsigned long long)truncated,
                 (unsigned long long)files, (unsigned long long)ring_drops, (unsigned long long)ring_packets, (unsigned long long)ring_freezes,
                 hashing ? "sha256" : "none");
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
