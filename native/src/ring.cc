// mirrorguard's capture-ring receiver: an AF_PACKET socket with a TPACKET_V3 ring mapped into the
// process and shared with JavaScript (src/ingest/ring.ts walks it).
//
// Why: a socket reader at live rates wakes every few datagrams and each wake-up (epoll, recvmmsg, the
// call into JavaScript) costs more than the packet. With TPACKET_V3 the kernel writes packets into
// blocks of a ring in memory we share; a block is handed to us when it is full or when the retire
// timeout passes, so we wake once per block of hundreds of packets and JavaScript walks it in place.
//
// The ring (packet(7), Documentation/networking/packet_mmap.rst, "TPACKET_V3"):
//   blockCount blocks of blockBytes each, one mapping. Block b starts at b * blockBytes with
//   struct tpacket_block_desc { u32 version; u32 offset_to_priv; struct tpacket_hdr_v1 hdr; }
//     hdr at +8: u32 block_status (TP_STATUS_USER: ours until we give it back with TP_STATUS_KERNEL),
//                u32 num_pkts, u32 offset_to_first_pkt, u32 blk_len, u64 seq_num, ts_first, ts_last.
//   Each packet: struct tpacket3_hdr { u32 tp_next_offset; u32 tp_sec; u32 tp_nsec; u32 tp_snaplen;
//     u32 tp_len; u32 tp_status; u16 tp_mac; u16 tp_net; ... } at 16-byte aligned offsets, the frame at
//     +tp_mac and its network header at +tp_net.
// JavaScript is called once per retired block with (byte offset of the block, packet count); when the
// call returns the block goes back to the kernel, unless pause() was called during it (backpressure):
// then the blocks not yet walked stay ours, the kernel fills the rest and, with none left, drops and
// counts (tp_drops, tp_freeze_q_cnt). Nothing reaching the ring is lost without a count.
//
// The kernel filters before the ring: a classic BPF program (built by src/ingest/ring-filter.ts and
// passed in as [code, jt, jf, k] quadruples) keeps only what is ours. PACKET_IGNORE_OUTGOING keeps our
// own transmissions (and, on lo, the outgoing copy of every packet) out. PACKET_FANOUT_HASH spreads the
// flows over one ring per worker.
//
// The mapping is exposed as an external ArrayBuffer; it is unmapped when that buffer is collected, never
// while JavaScript could still hold a view of it. close() closes the socket (the kernel stops writing).

#include <napi.h>

#ifdef __linux__

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace mirrorguard_ring {

constexpr uint32_t MIN_BLOCK_BYTES = 64 * 1024;
constexpr uint32_t MAX_BLOCK_BYTES = 64 * 1024 * 1024;
constexpr uint32_t MIN_BLOCKS = 2;
constexpr uint32_t MAX_BLOCKS = 65536;
// tp_frame_size: TPACKET_V3 ignores frames for placement (packets are packed in blocks) but the kernel
// still checks frame_nr = blocks * (block / frame); any aligned size that divides the block will do.
constexpr uint32_t FRAME_BYTES = 2048;

std::string Errno(const char* what, int err) {
  std::string s(what);
  s += ": ";
  s += strerror(err);
  return s;
}

const char* ErrnoCode(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    default: return "EIO";
  }
}

void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, Errno(syscall, err));
  e.Set("code", Napi::String::New(env, ErrnoCode(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

uint32_t NumberOr(const Napi::Object& o, const char* key, uint32_t dflt) {
  if (!o.Has(key)) return dflt;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  double d = v.ToNumber().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0)) return 0xffffffffu;
  return static_cast<uint32_t>(d);
}

struct Mapping {
  void* base;
  size_t len;
};

void Unmap(napi_env, void*, void* hint) {
  Mapping* m = static_cast<Mapping*>(hint);
  munmap(m->base, m->len);
  delete m;
}

// Main-thread time one wake-up may spend walking blocks before it lets the event loop turn (Drain).
constexpr uint64_t DRAIN_BUDGET_NS = 10 * 1000 * 1000;

class Ring : public Napi::ObjectWrap<Ring> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Ring",
                       {
                           InstanceMethod<&Ring::Start>("start"),
                           InstanceMethod<&Ring::Pause>("pause"),
                           InstanceMethod<&Ring::Resume>("resume"),
                           InstanceMethod<&Ring::Close>("close"),
                           InstanceMethod<&Ring::Stats>("stats"),
                           InstanceMethod<&Ring::Info>("info"),
                       });
  }

  // new Ring({ interface, filter, blockBytes, blockCount, retireMs, fanoutGroup })
  explicit Ring(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ring>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "new Ring(options): options must be an object").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string ifname = o.Has("interface") && o.Get("interface").IsString() ? o.Get("interface").ToString().Utf8Value() : std::string();
    block_bytes_ = NumberOr(o, "blockBytes", 1 << 20);
    block_count_ = NumberOr(o, "blockCount", 64);
    uint32_t retire_ms = NumberOr(o, "retireMs", 10);
    uint32_t fanout = NumberOr(o, "fanoutGroup", 0xffffffffu);
    long page = sysconf(_SC_PAGESIZE);
    if (block_bytes_ < MIN_BLOCK_BYTES || block_bytes_ > MAX_BLOCK_BYTES || (block_bytes_ % page) != 0 ||
        (block_bytes_ & (block_bytes_ - 1)) != 0 || block_count_ < MIN_BLOCKS || block_count_ > MAX_BLOCKS || retire_ms < 1 ||
        retire_ms > 60000 || (fanout != 0xffffffffu && fanout > 0xffff)) {
      Napi::RangeError::New(env, "new Ring(options): blockBytes (a power of two, 64 KiB..64 MiB), blockCount (2..65536), retireMs (1..60000) or fanoutGroup out of range")
          .ThrowAsJavaScriptException();
      return;
    }
    if (!o.Has("filter") || !o.Get("filter").IsArray()) {
      Napi::TypeError::New(env, "new Ring(options): filter must be an array of [code, jt, jf, k] numbers").ThrowAsJavaScriptException();
      return;
    }
    Napi::Array f = o.Get("filter").As<Napi::Array>();
    uint32_t nf = f.Length();
    if (nf == 0 || nf % 4 != 0 || nf / 4 > BPF_MAXINSNS) {
      Napi::RangeError::New(env, "new Ring(options): filter length").ThrowAsJavaScriptException();
      return;
    }
    std::vector<struct sock_filter> prog(nf / 4);
    for (uint32_t i = 0; i < nf / 4; i++) {
      prog[i].code = static_cast<uint16_t>(f.Get(i * 4).ToNumber().Uint32Value());
      prog[i].jt = static_cast<uint8_t>(f.Get(i * 4 + 1).ToNumber().Uint32Value());
      prog[i].jf = static_cast<uint8_t>(f.Get(i * 4 + 2).ToNumber().Uint32Value());
      prog[i].k = f.Get(i * 4 + 3).ToNumber().Uint32Value();
    }

    if (!ifname.empty()) {
      ifindex_ = if_nametoindex(ifname.c_str());
      if (ifindex_ == 0) {
        ThrowErrno(env, "if_nametoindex", errno != 0 ? errno : ENODEV);
        return;
      }
    }

    // Protocol 0: nothing is queued before bind(), so no packet slips in ahead of the filter.
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) {
      ThrowErrno(env, "socket(AF_PACKET)", errno);
      return;
    }
    struct sock_fprog fprog;
    fprog.len = static_cast<unsigned short>(prog.size());
    fprog.filter = prog.data();
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) != 0) {
      Fail(env, "setsockopt(SO_ATTACH_FILTER)");
      return;
    }
    int one = 1;
    // Our own transmissions (and lo's outgoing copy of every packet) never reach the ring (Linux 4.20+).
    ignore_outgoing_ = setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) == 0;
    int version = TPACKET_V3;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) {
      Fail(env, "setsockopt(PACKET_VERSION)");
      return;
    }
    struct tpacket_req3 req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = block_bytes_;
    req.tp_block_nr = block_count_;
    req.tp_frame_size = FRAME_BYTES;
    req.tp_frame_nr = (block_bytes_ / FRAME_BYTES) * block_count_;
    req.tp_retire_blk_tov = retire_ms;
    req.tp_feature_req_word = 0;
    if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) {
      Fail(env, "setsockopt(PACKET_RX_RING)");
      return;
    }
    map_len_ = static_cast<size_t>(block_bytes_) * block_count_;
    void* base = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (base == MAP_FAILED) {
      Fail(env, "mmap(ring)");
      return;
    }
    base_ = static_cast<uint8_t*>(base);

    struct sockaddr_ll ll;
    memset(&ll, 0, sizeof(ll));
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_IP);
    ll.sll_ifindex = static_cast<int>(ifindex_);
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&ll), sizeof(ll)) != 0) {
      int err = errno;
      munmap(base_, map_len_);
      base_ = nullptr;
      errno = err;
      Fail(env, "bind(AF_PACKET)");
      return;
    }
    if (fanout != 0xffffffffu) {
      // One group per serve process: each worker's ring joins it and the kernel picks a ring per flow hash.
      int arg = static_cast<int>(fanout | (PACKET_FANOUT_HASH << 16));
      if (setsockopt(fd_, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0) {
        int err = errno;
        munmap(base_, map_len_);
        base_ = nullptr;
        errno = err;
        Fail(env, "setsockopt(PACKET_FANOUT)");
        return;
      }
    }

    // The mapping as JavaScript sees it; unmapped by the finalizer when the buffer is collected.
    Mapping* m = new Mapping{base_, map_len_};
    napi_value ab;
    if (napi_create_external_arraybuffer(env, base_, map_len_, Unmap, m, &ab) != napi_ok) {
      delete m;
      munmap(base_, map_len_);
      base_ = nullptr;
      ::close(fd_);
      fd_ = -1;
      Napi::Error::New(env, "the ring could not be shared with JavaScript (external ArrayBuffers disabled?)").ThrowAsJavaScriptException();
      return;
    }
    ring_ref_ = Napi::Persistent(Napi::ArrayBuffer(env, ab));
    if (napi_add_async_cleanup_hook(env, OnEnvTeardown, this, &cleanup_handle_) != napi_ok) cleanup_handle_ = nullptr;
  }

  ~Ring() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    RemoveCleanupHook();
  }

 private:
  void Fail(Napi::Env env, const char* syscall) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    ThrowErrno(env, syscall, err);
  }

  struct tpacket_block_desc* Block(uint32_t i) { return reinterpret_cast<struct tpacket_block_desc*>(base_ + static_cast<size_t>(i) * block_bytes_); }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || closing_) {
      Napi::Error::New(env, "ring is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (poll_ != nullptr) {
      Napi::Error::New(env, "ring already started").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "start(onBlock): onBlock must be a function").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    async_context_ = new Napi::AsyncContext(env, "mirrorguard:ring-receiver", Value());
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "no libuv loop").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    poll_->data = this;
    kick_ = new uv_timer_t;
    uv_timer_init(loop, kick_);
    kick_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(kick_));
    Ref();
    StartPolling();
    return env.Undefined();
  }

  void StartPolling() {
    if (poll_ == nullptr || polling_ || closing_) return;
    if (uv_poll_start(poll_, UV_READABLE, OnReadable) == 0) polling_ = true;
  }

  void StopPolling() {
    if (poll_ != nullptr && polling_) uv_poll_stop(poll_);
    polling_ = false;
  }

  // pause(): keep the blocks not yet walked (the kernel fills the others, then drops and counts).
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    paused_ = true;
    StopPolling();
    return info.Env().Undefined();
  }

  // resume(): walk what was held at the next turn of the event loop, then wait for the kernel again.
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    paused_ = false;
    StartPolling();
    if (kick_ != nullptr && !closing_) uv_timer_start(kick_, OnKick, 0, 0);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closing_) return Napi::Boolean::New(env, poll_ == nullptr);
    if (info.Length() > 0 && info[0].IsFunction()) close_callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    BeginClose(false);
    return Napi::Boolean::New(env, poll_ == nullptr);
  }

  void BeginClose(bool teardown) {
    if (closing_) return;
    closing_ = true;
    teardown_ = teardown;
    StopPolling();
    if (fd_ >= 0) ReadKernelStats();
    if (poll_ != nullptr) {
      handles_open_ = 2;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), OnHandleClosed);
      uv_close(reinterpret_cast<uv_handle_t*>(kick_), OnHandleClosed);
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    } else {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      close_callback_.Reset();
      RemoveCleanupHook();
    }
  }

  static void OnHandleClosed(uv_handle_t* h) {
    Ring* self = static_cast<Ring*>(h->data);
    if (h == reinterpret_cast<uv_handle_t*>(self->poll_)) {
      delete self->poll_;
      self->poll_ = nullptr;
    } else {
      delete self->kick_;
      self->kick_ = nullptr;
    }
    if (--self->handles_open_ == 0) self->Finish();
  }

  void Finish() {
    RemoveCleanupHook();
    if (teardown_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!close_callback_.IsEmpty()) {
      Napi::FunctionReference cb = std::move(close_callback_);
      cb.MakeCallback(Value(), {}, *async_context_);
      ReportPendingException(env);
    }
    callback_.Reset();
    delete async_context_;
    async_context_ = nullptr;
    Unref();
  }

  void RemoveCleanupHook() {
    if (cleanup_handle_ != nullptr) {
      napi_async_cleanup_hook_handle h = cleanup_handle_;
      cleanup_handle_ = nullptr;
      napi_remove_async_cleanup_hook(h);
    }
  }

  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
    Ring* self = static_cast<Ring*>(arg);
    if (self->closing_) return;
    self->BeginClose(true);
  }

  static void ReportPendingException(Napi::Env env) {
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  static void OnReadable(uv_poll_t* h, int status, int) {
    Ring* self = static_cast<Ring*>(h->data);
    if (status < 0) {
      self->errors_++;
      self->last_error_ = -status;
      return;
    }
    self->Drain();
  }

  static void OnKick(uv_timer_t* t) { static_cast<Ring*>(t->data)->Drain(); }

  // Walk the blocks the kernel has handed over, in ring order, until one is still the kernel's or
  // JavaScript asked us to hold the rest (pause() during the callback), or DRAIN_BUDGET_NS have gone:
  // then the rest is walked at the next turn of the event loop (the next poll), so file creates
  // coming back from the threadpool, timers and the store's queued writes run in between. Without
  // the budget, 10,000 new pairs arriving at once kept this loop busy for 0.8 s, and the first
  // batched create's completion (0.2 ms of work) waited behind it while every new pair's records
  // piled up in the write-buffer pool.
  void Drain() {
    if (paused_ || closing_ || fd_ < 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    wakeups_++;
    const uint64_t start = uv_hrtime();
    for (uint32_t n = 0; n < block_count_; n++) {
      // The poll is level-triggered: a block left handed over keeps the socket readable.
      if (n > 0 && uv_hrtime() - start > DRAIN_BUDGET_NS) return;
      struct tpacket_block_desc* b = Block(current_);
      if ((__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
      uint32_t pkts = b->hdr.bh1.num_pkts;
      blocks_++;
      packets_ += pkts;
      if (pkts > max_block_pkts_) max_block_pkts_ = pkts;
      callback_.MakeCallback(Value(), {Napi::Number::New(env, static_cast<double>(current_) * block_bytes_), Napi::Number::New(env, pkts)},
                             *async_context_);
      ReportPendingException(env);
      if (closing_) return;
      // Walked: the block is the kernel's again.
      __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      current_ = (current_ + 1) % block_count_;
      if (paused_) return;
    }
  }

  // PACKET_STATISTICS resets the kernel's counters on every read: accumulate them here.
  void ReadKernelStats() {
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
      // tp_packets counts what the filter passed, dropped or not.
      kernel_packets_ += st.tp_packets;
      kernel_drops_ += st.tp_drops;
      freeze_q_ += st.tp_freeze_q_cnt;
    }
  }

  uint32_t HeldBlocks() {
    if (base_ == nullptr || fd_ < 0) return 0;
    uint32_t held = 0;
    for (uint32_t i = 0; i < block_count_; i++) {
      if ((__atomic_load_n(&Block(i)->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0) held++;
    }
    return held;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ >= 0) ReadKernelStats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("wakeups", Napi::Number::New(env, static_cast<double>(wakeups_)));
    o.Set("blocks", Napi::Number::New(env, static_cast<double>(blocks_)));
    o.Set("packets", Napi::Number::New(env, static_cast<double>(packets_)));
    o.Set("maxBlockPackets", Napi::Number::New(env, max_block_pkts_));
    o.Set("kernelPackets", Napi::Number::New(env, static_cast<double>(kernel_packets_)));
    o.Set("ringDrops", Napi::Number::New(env, static_cast<double>(kernel_drops_)));
    o.Set("freezes", Napi::Number::New(env, static_cast<double>(freeze_q_)));
    o.Set("heldBlocks", Napi::Number::New(env, HeldBlocks()));
    o.Set("errors", Napi::Number::New(env, static_cast<double>(errors_)));
    o.Set("lastError", last_error_ != 0 ? Napi::Value(Napi::String::New(env, ErrnoCode(last_error_))) : env.Null());
    o.Set("paused", Napi::Boolean::New(env, paused_));
    o.Set("closed", Napi::Boolean::New(env, closing_));
    return o;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("ring", ring_ref_.Value());
    o.Set("blockBytes", Napi::Number::New(env, block_bytes_));
    o.Set("blockCount", Napi::Number::New(env, block_count_));
    o.Set("ifindex", Napi::Number::New(env, ifindex_));
    o.Set("ignoreOutgoing", Napi::Boolean::New(env, ignore_outgoing_));
    return o;
  }

  int fd_ = -1;
  uint32_t ifindex_ = 0;
  uint32_t block_bytes_ = 0;
  uint32_t block_count_ = 0;
  uint32_t current_ = 0;
  bool ignore_outgoing_ = false;
  uint8_t* base_ = nullptr;
  size_t map_len_ = 0;
  Napi::Reference<Napi::ArrayBuffer> ring_ref_;

  uv_poll_t* poll_ = nullptr;
  uv_timer_t* kick_ = nullptr;
  int handles_open_ = 0;
  bool polling_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool teardown_ = false;
  Napi::FunctionReference callback_;
  Napi::FunctionReference close_callback_;
  Napi::AsyncContext* async_context_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_handle_ = nullptr;

  uint64_t wakeups_ = 0;
  uint64_t blocks_ = 0;
  uint64_t packets_ = 0;
  uint32_t max_block_pkts_ = 0;
  uint64_t kernel_packets_ = 0;
  uint64_t kernel_drops_ = 0;
  uint64_t freeze_q_ = 0;
  uint64_t errors_ = 0;
  int last_error_ = 0;
};

// holdUdpPort(host, port) -> { fd, port }: bind a UDP socket that is never read, so the kernel does not
// answer the mirrored datagrams with ICMP port unreachable while the ring takes them. Its receive buffer
// is the smallest the kernel allows (SO_RCVBUF 0 rounds up to SOCK_MIN_RCVBUF): the kernel's drop counter
// on this socket counts nearly every datagram, and means nothing (docs/operations.md).
Napi::Value HoldUdpPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info.Length() > 0 ? info[0].ToString().Utf8Value() : std::string("0.0.0.0");
  uint32_t port = info.Length() > 1 ? info[1].ToNumber().Uint32Value() : 0;
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (port > 65535 || inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    ThrowErrno(env, "inet_pton", EINVAL);
    return env.Undefined();
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    ThrowErrno(env, "socket", errno);
    return env.Undefined();
  }
  int zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &zero, sizeof(zero));
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, "bind", err);
    return env.Undefined();
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&a), &len);
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, fd));
  o.Set("port", Napi::Number::New(env, ntohs(a.sin_port)));
  return o;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info.Length() > 0 ? info[0].ToNumber().Int32Value() : -1;
  if (fd > 2) ::close(fd);
  return info.Env().Undefined();
}

}  // namespace mirrorguard_ring

// Called from the addon's init (receiver.cc): adds Ring, holdUdpPort, closeFd and ringLayout.
void InitRing(Napi::Env env, Napi::Object exports) {
  using namespace mirrorguard_ring;
  exports.Set("Ring", Ring::Init(env));
  exports.Set("holdUdpPort", Napi::Function::New(env, HoldUdpPort, "holdUdpPort"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  Napi::Object l = Napi::Object::New(env);
  // Byte offsets in a block descriptor and a tpacket3_hdr, from the kernel's own headers.
  l.Set("BLOCK_STATUS", static_cast<uint32_t>(offsetof(struct tpacket_block_desc, hdr.bh1.block_status)));
  l.Set("BLOCK_NUM_PKTS", static_cast<uint32_t>(offsetof(struct tpacket_block_desc, hdr.bh1.num_pkts)));
  l.Set("BLOCK_FIRST", static_cast<uint32_t>(offsetof(struct tpacket_block_desc, hdr.bh1.offset_to_first_pkt)));
  l.Set("PKT_NEXT", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_next_offset)));
  l.Set("PKT_SEC", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_sec)));
  l.Set("PKT_NSEC", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_nsec)));
  l.Set("PKT_SNAPLEN", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_snaplen)));
  l.Set("PKT_LEN", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_len)));
  l.Set("PKT_MAC", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_mac)));
  l.Set("PKT_NET", static_cast<uint32_t>(offsetof(struct tpacket3_hdr, tp_net)));
  l.Set("MIN_BLOCK_BYTES", MIN_BLOCK_BYTES);
  l.Set("MAX_BLOCK_BYTES", MAX_BLOCK_BYTES);
  l.Set("MIN_BLOCKS", MIN_BLOCKS);
  l.Set("MAX_BLOCKS", MAX_BLOCKS);
  exports.Set("ringLayout", l);
}

#endif
