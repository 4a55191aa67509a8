// mirrorguard's native UDP receiver: recvmmsg(2) in batches into one buffer shared with JavaScript.
//
// node:dgram hands JavaScript one 'message' event and one new Buffer per datagram, which caps a core at
// roughly 100-150k datagrams/s. Here the socket is ours: libuv tells us when it is readable (a uv_poll_t
// on the fd, so the event loop stays free), recvmmsg fills up to `batch` preallocated slots in one
// system call, and JavaScript gets ONE call per batch with the count. It then walks the slots in place:
//
//   data (ArrayBuffer, batch * slotBytes):  slot i holds datagram i at byte i * slotBytes
//   meta (ArrayBuffer, batch * META_WORDS uint32 words), per slot i at word i * META_WORDS:
//     +0 LEN      bytes stored in the slot (min(datagram length, slotBytes))
//     +1 FLAGS    FLAG_TRUNC: the datagram was longer than the slot (ORIG_LEN tells how long);
//                 FLAG_CLOCK: no kernel timestamp came with it, TS_* is clock_gettime(CLOCK_REALTIME)
//     +2 FAMILY   4 or 6 (an IPv4-mapped IPv6 source on a dual-stack socket is reported as 4)
//     +3 SRC4     IPv4 source address, host order (a.b.c.d = a<<24 | b<<16 | c<<8 | d)
//     +4 TS_SEC   kernel receive time (SO_TIMESTAMPNS), seconds since the epoch
//     +5 TS_NSEC  and nanoseconds
//     +6 SRC_PORT source UDP port
//     +7 ORIG_LEN the datagram's full length (recvmmsg with MSG_TRUNC reports it)
//     +8..+11 SRC6 the 16 bytes of an IPv6 source, in network order
//
// Nothing is allocated per packet on either side. The layout constants are exported so JavaScript
// never hard-codes them.
//
// Kernel facts relied on (Linux): recvmmsg(2) returns the datagrams already queued and, with
// MSG_DONTWAIT, never blocks; with MSG_TRUNC in flags, UDP reports the real datagram length while
// msg_flags carries MSG_TRUNC (udp_recvmsg). SO_TIMESTAMPNS attaches an SCM_TIMESTAMPNS struct timespec
// per datagram (socket(7)); SO_RXQ_OVFL attaches the socket's cumulative drop counter (sk_drops) as a
// uint32. SO_RCVBUF is capped at net.core.rmem_max and doubled by the kernel for bookkeeping;
// SO_RCVBUFFORCE (CAP_NET_ADMIN) ignores the cap (socket(7)).

#include <napi.h>

#ifdef __linux__

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

// The capture ring (native/src/ring.cc) adds its exports here.
void InitRing(Napi::Env env, Napi::Object exports);
void InitWriter(Napi::Env env, Napi::Object exports);

namespace {

constexpr uint32_t META_WORDS = 12;
constexpr uint32_t M_LEN = 0;
constexpr uint32_t M_FLAGS = 1;
constexpr uint32_t M_FAMILY = 2;
constexpr uint32_t M_SRC4 = 3;
constexpr uint32_t M_TS_SEC = 4;
constexpr uint32_t M_TS_NSEC = 5;
constexpr uint32_t M_SRC_PORT = 6;
constexpr uint32_t M_ORIG_LEN = 7;
constexpr uint32_t M_SRC6 = 8;

constexpr uint32_t FLAG_TRUNC = 1;
constexpr uint32_t FLAG_CLOCK = 2;

constexpr uint32_t MIN_BATCH = 1;
// UIO_MAXIOV: recvmmsg refuses a larger vlen.
constexpr uint32_t MAX_BATCH = 1024;
constexpr uint32_t MIN_SLOT_BYTES = 64;
// The largest UDP payload over IPv4 (65535 - 20 - 8); IPv6 jumbograms are not a thing on UDP sockets here.
constexpr uint32_t MAX_SLOT_BYTES = 65507;

// Room for SCM_TIMESTAMPNS (struct timespec) and SO_RXQ_OVFL (uint32), with CMSG alignment.
constexpr size_t CMSG_BYTES = CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(uint32_t)) + 16;

std::string ErrnoText(const char* syscall, int err) {
  std::string s(syscall);
  s += ": ";
  s += strerror(err);
  return s;
}

const char* ErrnoCode(int err) {
  switch (err) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    default: return "EIO";
  }
}

class Receiver : public Napi::ObjectWrap<Receiver> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Receiver",
                       {
                           InstanceMethod<&Receiver::Start>("start"),
                           InstanceMethod<&Receiver::Pause>("pause"),
                           InstanceMethod<&Receiver::Resume>("resume"),
                           InstanceMethod<&Receiver::Close>("close"),
                           InstanceMethod<&Receiver::Stats>("stats"),
                           InstanceMethod<&Receiver::Info>("info"),
                       });
  }

  explicit Receiver(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Receiver>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "new Receiver(options): options must be an object").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string host = o.Has("host") ? o.Get("host").ToString().Utf8Value() : std::string("0.0.0.0");
    uint32_t port = NumberOr(o, "port", 0);
    double rcvbuf = o.Has("recvBufferBytes") ? o.Get("recvBufferBytes").ToNumber().DoubleValue() : 0;
    bool reuse_port = o.Has("reusePort") && o.Get("reusePort").ToBoolean().Value();
    batch_ = NumberOr(o, "batch", 256);
    slot_bytes_ = NumberOr(o, "slotBytes", 9216);
    max_batches_per_wakeup_ = NumberOr(o, "maxBatchesPerWakeup", 16);
    if (port > 65535 || batch_ < MIN_BATCH || batch_ > MAX_BATCH || slot_bytes_ < MIN_SLOT_BYTES ||
        slot_bytes_ > MAX_SLOT_BYTES || max_batches_per_wakeup_ < 1 || !(rcvbuf >= 0 && rcvbuf <= 2147483647.0)) {
      Napi::RangeError::New(env, "new Receiver(options): port, batch, slotBytes, maxBatchesPerWakeup or recvBufferBytes out of range")
          .ThrowAsJavaScriptException();
      return;
    }

    // Address: IPv4 literal, else IPv6 literal. '::' is dual-stack (IPV6_V6ONLY off), so one socket
    // takes mirror traffic from IPv4 and IPv6 sources.
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    memset(&addr, 0, sizeof(addr));
    struct sockaddr_in* a4 = reinterpret_cast<struct sockaddr_in*>(&addr);
    struct sockaddr_in6* a6 = reinterpret_cast<struct sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
      a4->sin_family = AF_INET;
      a4->sin_port = htons(static_cast<uint16_t>(port));
      addr_len = sizeof(*a4);
      family_ = 4;
    } else if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(static_cast<uint16_t>(port));
      addr_len = sizeof(*a6);
      family_ = 6;
    } else {
      ThrowErrno(env, "inet_pton", EINVAL, ("not an IP address: " + host).c_str());
      return;
    }

    fd_ = socket(family_ == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      ThrowErrno(env, "socket", errno, nullptr);
      return;
    }
    int one = 1;
    int zero = 0;
    if (family_ == 6) setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (reuse_port && setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      FailSocket(env, "setsockopt(SO_REUSEPORT)");
      return;
    }
    if (rcvbuf > 0) {
      // The kernel stores twice what is asked (socket(7)) and getsockopt reports the doubled value.
      int want = static_cast<int>(rcvbuf);
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
      if (GetRcvbuf() / 2 < want) {
        // Capped by net.core.rmem_max: privileged processes (CAP_NET_ADMIN) may go past it.
        if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) == 0) forced_ = true;
      }
    }
    rcvbuf_granted_ = GetRcvbuf();
    if (setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0) timestamps_ = false;
    if (setsockopt(fd_, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)) != 0) overflow_counter_ = false;
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), addr_len) != 0) {
      FailSocket(env, "bind");
      return;
    }
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    if (getsockname(fd_, reinterpret_cast<struct sockaddr*>(&bound), &bound_len) == 0) {
      bound_port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<struct sockaddr_in*>(&bound)->sin_port
                                                      : reinterpret_cast<struct sockaddr_in6*>(&bound)->sin6_port);
    }

    // The buffers JavaScript reads. V8 owns them (ArrayBuffer backing stores never move); we keep
    // references so they live as long as this object.
    Napi::ArrayBuffer data = Napi::ArrayBuffer::New(env, static_cast<size_t>(batch_) * slot_bytes_);
    Napi::ArrayBuffer meta = Napi::ArrayBuffer::New(env, static_cast<size_t>(batch_) * META_WORDS * 4);
    data_base_ = static_cast<uint8_t*>(data.Data());
    meta_base_ = static_cast<uint32_t*>(meta.Data());
    data_ref_ = Napi::Persistent(data);
    meta_ref_ = Napi::Persistent(meta);

    msgs_.resize(batch_);
    iovs_.resize(batch_);
    names_.resize(batch_);
    cmsgs_.resize(static_cast<size_t>(batch_) * CMSG_BYTES);
    for (uint32_t i = 0; i < batch_; i++) {
      iovs_[i].iov_base = data_base_ + static_cast<size_t>(i) * slot_bytes_;
      iovs_[i].iov_len = slot_bytes_;
      struct msghdr& h = msgs_[i].msg_hdr;
      memset(&h, 0, sizeof(h));
      h.msg_name = &names_[i];
      h.msg_namelen = sizeof(names_[i]);
      h.msg_iov = &iovs_[i];
      h.msg_iovlen = 1;
      h.msg_control = cmsgs_.data() + static_cast<size_t>(i) * CMSG_BYTES;
      h.msg_controllen = CMSG_BYTES;
    }

    // A worker thread's environment can be torn down with the socket still polled; libuv then refuses
    // to close its loop. The async cleanup hook lets us close the handle first (N-API 8).
    if (napi_add_async_cleanup_hook(env, OnEnvTeardown, this, &cleanup_handle_) != napi_ok) cleanup_handle_ = nullptr;
  }

  ~Receiver() override {
    // Only reached when JavaScript dropped the object: never started, or already closed.
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    RemoveCleanupHook();
  }

 private:
  static uint32_t NumberOr(const Napi::Object& o, const char* key, uint32_t dflt) {
    if (!o.Has(key)) return dflt;
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return dflt;
    double d = v.ToNumber().DoubleValue();
    if (!(d >= 0 && d <= 4294967295.0)) return 0xffffffffu;
    return static_cast<uint32_t>(d);
  }

  void ThrowErrno(Napi::Env env, const char* syscall, int err, const char* detail) {
    Napi::Error e = Napi::Error::New(env, detail ? std::string(detail) : ErrnoText(syscall, err));
    e.Set("code", Napi::String::New(env, ErrnoCode(err)));
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("syscall", Napi::String::New(env, syscall));
    e.ThrowAsJavaScriptException();
  }

  void FailSocket(Napi::Env env, const char* syscall) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    ThrowErrno(env, syscall, err, nullptr);
  }

  int GetRcvbuf() {
    int v = 0;
    socklen_t l = sizeof(v);
    if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, &l) != 0) return 0;
    return v;
  }

  // start(onBatch): begin polling; onBatch(count) is called once per recvmmsg batch.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || closing_) {
      Napi::Error::New(env, "receiver is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (poll_ != nullptr) {
      Napi::Error::New(env, "receiver already started").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "start(onBatch): onBatch must be a function").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    async_context_ = new Napi::AsyncContext(env, "mirrorguard:native-receiver", Value());
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
    // Held while the handle exists, so a receiver nobody references keeps receiving until close().
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

  // pause(): stop reading; datagrams queue in the socket buffer (and past it, the kernel drops them).
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    paused_ = true;
    StopPolling();
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    paused_ = false;
    StartPolling();
    return info.Env().Undefined();
  }

  // close(callback): stop and release the socket. Returns true when that is already done (the receiver
  // was never started); otherwise callback() runs once libuv has closed the handle.
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
    if (poll_ != nullptr) {
      // uv_close takes the fd out of epoll at once (uv__platform_invalidate_fd), so the fd may be
      // closed now; the handle's memory goes in OnHandleClosed.
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), OnHandleClosed);
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
    Receiver* self = static_cast<Receiver*>(h->data);
    delete reinterpret_cast<uv_poll_t*>(h);
    self->poll_ = nullptr;
    self->Finish();
  }

  // The handle is gone: tell JavaScript (unless the environment is being torn down) and let go.
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

  static void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
    Receiver* self = static_cast<Receiver*>(arg);
    // Close without calling into JavaScript; Finish removes the hook, which tells Node we are done.
    if (self->closing_) return;  // a close already in progress removes the hook when it completes
    self->BeginClose(true);
  }

  static void ReportPendingException(Napi::Env env) {
    // No JavaScript frame is below us (we run from the event loop): hand an exception thrown by the
    // callback to process 'uncaughtException', as an event emitter would.
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  static void OnReadable(uv_poll_t* h, int status, int events) {
    Receiver* self = static_cast<Receiver*>(h->data);
    if (status < 0) {
      self->errors_++;
      self->last_error_ = -status;
      return;
    }
    self->Drain();
  }

  // Read batches until the socket is empty or the per-wakeup budget is spent (libuv polls level-
  // triggered, so what is left wakes us again after the loop's other work had its turn).
  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    wakeups_++;
    for (uint32_t b = 0; b < max_batches_per_wakeup_; b++) {
      if (!polling_ || closing_ || fd_ < 0) return;
      int n = recvmmsg(fd_, msgs_.data(), batch_, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // ICMP errors queued on the socket (ECONNREFUSED and the like) are reported once per read
        // and do not stop the stream.
        errors_++;
        last_error_ = errno;
        return;
      }
      if (n == 0) return;
      Fill(static_cast<uint32_t>(n));
      batches_++;
      packets_ += static_cast<uint32_t>(n);
      if (static_cast<uint32_t>(n) > max_batch_seen_) max_batch_seen_ = n;
      callback_.MakeCallback(Value(), {Napi::Number::New(env, n)}, *async_context_);
      ReportPendingException(env);
      // A short batch means the queue was empty a moment ago: save the EAGAIN round trip.
      if (static_cast<uint32_t>(n) < batch_) return;
    }
  }

  void Fill(uint32_t n) {
    struct timespec fallback = {0, 0};
    bool have_fallback = false;
    for (uint32_t i = 0; i < n; i++) {
      struct msghdr& h = msgs_[i].msg_hdr;
      uint32_t* m = meta_base_ + static_cast<size_t>(i) * META_WORDS;
      uint32_t full = msgs_[i].msg_len;
      uint32_t flags = 0;
      if ((h.msg_flags & MSG_TRUNC) != 0 || full > slot_bytes_) {
        flags |= FLAG_TRUNC;
        truncated_++;
      }
      m[M_LEN] = full < slot_bytes_ ? full : slot_bytes_;
      m[M_ORIG_LEN] = full;
      bytes_ += full;

      const struct sockaddr_storage& sa = names_[i];
      if (sa.ss_family == AF_INET) {
        const struct sockaddr_in* s4 = reinterpret_cast<const struct sockaddr_in*>(&sa);
        m[M_FAMILY] = 4;
        m[M_SRC4] = ntohl(s4->sin_addr.s_addr);
        m[M_SRC_PORT] = ntohs(s4->sin_port);
      } else {
        const struct sockaddr_in6* s6 = reinterpret_cast<const struct sockaddr_in6*>(&sa);
        const uint8_t* b = s6->sin6_addr.s6_addr;
        m[M_SRC_PORT] = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
          // A dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d; the session is the IPv4 address.
          m[M_FAMILY] = 4;
          m[M_SRC4] = (static_cast<uint32_t>(b[12]) << 24) | (static_cast<uint32_t>(b[13]) << 16) |
                      (static_cast<uint32_t>(b[14]) << 8) | b[15];
        } else {
          m[M_FAMILY] = 6;
          m[M_SRC4] = 0;
          memcpy(m + M_SRC6, b, 16);
        }
      }

      bool stamped = false;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof(ts));
          m[M_TS_SEC] = static_cast<uint32_t>(ts.tv_sec);
          m[M_TS_NSEC] = static_cast<uint32_t>(ts.tv_nsec);
          stamped = true;
        } else if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
          uint32_t d;
          memcpy(&d, CMSG_DATA(c), sizeof(d));
          // sk_drops is cumulative for the socket's life; keep the latest (largest) value seen.
          if (d > kernel_drops_) kernel_drops_ = d;
        }
      }
      if (!stamped) {
        if (!have_fallback) {
          clock_gettime(CLOCK_REALTIME, &fallback);
          have_fallback = true;
        }
        m[M_TS_SEC] = static_cast<uint32_t>(fallback.tv_sec);
        m[M_TS_NSEC] = static_cast<uint32_t>(fallback.tv_nsec);
        flags |= FLAG_CLOCK;
        unstamped_++;
      }
      m[M_FLAGS] = flags;

      // recvmmsg rewrote these: restore them for the next call.
      h.msg_namelen = sizeof(names_[i]);
      h.msg_controllen = CMSG_BYTES;
      h.msg_flags = 0;
    }
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("wakeups", Napi::Number::New(env, static_cast<double>(wakeups_)));
    o.Set("batches", Napi::Number::New(env, static_cast<double>(batches_)));
    o.Set("packets", Napi::Number::New(env, static_cast<double>(packets_)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes_)));
    o.Set("truncated", Napi::Number::New(env, static_cast<double>(truncated_)));
    o.Set("unstamped", Napi::Number::New(env, static_cast<double>(unstamped_)));
    o.Set("maxBatch", Napi::Number::New(env, max_batch_seen_));
    o.Set("kernelDrops", Napi::Number::New(env, kernel_drops_));
    o.Set("kernelDropsAvailable", Napi::Boolean::New(env, overflow_counter_));
    o.Set("errors", Napi::Number::New(env, static_cast<double>(errors_)));
    o.Set("lastError", last_error_ != 0 ? Napi::Value(Napi::String::New(env, ErrnoCode(last_error_))) : env.Null());
    o.Set("paused", Napi::Boolean::New(env, paused_));
    o.Set("closed", Napi::Boolean::New(env, closing_));
    return o;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("family", Napi::Number::New(env, family_));
    o.Set("port", Napi::Number::New(env, bound_port_));
    o.Set("recvBufferBytes", Napi::Number::New(env, rcvbuf_granted_));
    o.Set("recvBufferForced", Napi::Boolean::New(env, forced_));
    o.Set("kernelTimestamps", Napi::Boolean::New(env, timestamps_));
    o.Set("batch", Napi::Number::New(env, batch_));
    o.Set("slotBytes", Napi::Number::New(env, slot_bytes_));
    o.Set("data", data_ref_.Value());
    o.Set("meta", meta_ref_.Value());
    return o;
  }

  int fd_ = -1;
  uint32_t family_ = 4;
  uint32_t bound_port_ = 0;
  int rcvbuf_granted_ = 0;
  bool forced_ = false;
  bool timestamps_ = true;
  bool overflow_counter_ = true;
  uint32_t batch_ = 256;
  uint32_t slot_bytes_ = 9216;
  uint32_t max_batches_per_wakeup_ = 16;

  uint8_t* data_base_ = nullptr;
  uint32_t* meta_base_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> data_ref_;
  Napi::Reference<Napi::ArrayBuffer> meta_ref_;
  std::vector<struct mmsghdr> msgs_;
  std::vector<struct iovec> iovs_;
  std::vector<struct sockaddr_storage> names_;
  std::vector<uint8_t> cmsgs_;

  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool teardown_ = false;
  Napi::FunctionReference callback_;
  Napi::FunctionReference close_callback_;
  Napi::AsyncContext* async_context_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_handle_ = nullptr;

  uint64_t wakeups_ = 0;
  uint64_t batches_ = 0;
  uint64_t packets_ = 0;
  uint64_t bytes_ = 0;
  uint64_t truncated_ = 0;
  uint64_t unstamped_ = 0;
  uint32_t max_batch_seen_ = 0;
  uint32_t kernel_drops_ = 0;
  uint64_t errors_ = 0;
  int last_error_ = 0;
};

// copyBytes(dst, dstOff, src, srcOff, len): memcpy between two Uint8Arrays (Buffers), bounds-checked.
// Node 20's Buffer#copy makes a new Uint8Array view for every sub-range copy; this does not, so a
// PCAP writer fed by the native receiver can append a frame without allocating. Returns the bytes
// copied, or -1 when a range is out of bounds.
Napi::Value CopyBytes(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (info.Length() < 5) return Napi::Number::New(env, -1);
  void* dst_data = nullptr;
  void* src_data = nullptr;
  size_t dst_len = 0, src_len = 0;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, info[0], &t, &dst_len, &dst_data, &ab, &off) != napi_ok || t != napi_uint8_array ||
      napi_get_typedarray_info(env, info[2], &t, &src_len, &src_data, &ab, &off) != napi_ok || t != napi_uint8_array) {
    return Napi::Number::New(env, -1);
  }
  int64_t dst_off = 0, src_off = 0, len = 0;
  napi_get_value_int64(env, info[1], &dst_off);
  napi_get_value_int64(env, info[3], &src_off);
  napi_get_value_int64(env, info[4], &len);
  if (len < 0 || dst_off < 0 || src_off < 0 || static_cast<uint64_t>(dst_off + len) > dst_len ||
      static_cast<uint64_t>(src_off + len) > src_len) {
    return Napi::Number::New(env, -1);
  }
  memmove(static_cast<uint8_t*>(dst_data) + dst_off, static_cast<uint8_t*>(src_data) + src_off, static_cast<size_t>(len));
  return Napi::Number::New(env, static_cast<double>(len));
}

// Copier: the PCAP writer's frame copies for a whole receive batch in ONE call (issue 11). Per packet,
// JavaScript decides where a frame goes (session, buffer, offset: the TypeScript decoders and the writer
// stay the one source of truth) and writes five int32 words into a plan array it shares with this object:
//
//   plan (Int32Array, capacity * PLAN_WORDS), entry i at word i * PLAN_WORDS:
//     +0 SRC     id of the source buffer (the receiver's batch buffer), from register()
//     +1 SRC_OFF byte offset of the frame in it
//     +2 DST     id of the destination buffer (a PCAP write buffer from the pool), from register()
//     +3 DST_OFF byte offset in it (after the record header JavaScript wrote)
//     +4 LEN     bytes to copy
//
// run(count) then memcpys entries [0, count): one N-API crossing per batch instead of one per frame (the
// crossing, ~26% of serve's main thread at 512 B, cost far more than the memcpy). Buffers are registered
// once (a pool buffer lives as long as the pool) and held by a reference until unregister(), so an id never
// points at freed memory; every entry is bounds-checked, and a bad one is skipped and counted.
constexpr uint32_t PLAN_WORDS = 5;

class Copier : public Napi::ObjectWrap<Copier> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Copier",
                       {
                           InstanceMethod<&Copier::Register>("register"),
                           InstanceMethod<&Copier::Unregister>("unregister"),
                           InstanceMethod<&Copier::Run>("run"),
                       });
  }

  explicit Copier(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Copier>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      Napi::TypeError::New(env, "new Copier(plan): plan must be an Int32Array").ThrowAsJavaScriptException();
      return;
    }
    Napi::Int32Array plan = info[0].As<Napi::Int32Array>();
    plan_ = plan.Data();
    capacity_ = static_cast<uint32_t>(plan.ElementLength() / PLAN_WORDS);
    plan_ref_ = Napi::Persistent(plan);
  }

 private:
  struct Region {
    uint8_t* data = nullptr;
    size_t len = 0;
  };

  // register(buf: Uint8Array) -> id (a small non-negative integer), or -1 when buf is not a Uint8Array.
  Napi::Value Register(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    void* data = nullptr;
    size_t len = 0;
    napi_typedarray_type t;
    napi_value ab;
    size_t off;
    if (info.Length() < 1 || napi_get_typedarray_info(env, info[0], &t, &len, &data, &ab, &off) != napi_ok || t != napi_uint8_array) {
      return Napi::Number::New(env, -1);
    }
    uint32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      id = static_cast<uint32_t>(regions_.size());
      regions_.emplace_back();
      refs_.emplace_back();
    }
    regions_[id].data = static_cast<uint8_t*>(data);
    regions_[id].len = len;
    refs_[id] = Napi::Persistent(info[0].As<Napi::Object>());
    return Napi::Number::New(env, id);
  }

  Napi::Value Unregister(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t id = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : -1;
    if (id < 0 || static_cast<uint64_t>(id) >= regions_.size() || regions_[id].data == nullptr) return Napi::Boolean::New(env, false);
    regions_[id] = Region();
    refs_[id].Reset();
    free_.push_back(static_cast<uint32_t>(id));
    return Napi::Boolean::New(env, true);
  }

  // run(count): copy plan entries [0, count). Returns the entries skipped as out of bounds (0 normally).
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t count = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    if (count > capacity_) count = capacity_;
    uint32_t bad = 0;
    const size_t nregions = regions_.size();
    const Region* r = regions_.data();
    const int32_t* e = plan_;
    for (uint32_t i = 0; i < count; i++, e += PLAN_WORDS) {
      const uint32_t src = static_cast<uint32_t>(e[0]);
      const uint32_t dst = static_cast<uint32_t>(e[2]);
      const int64_t src_off = e[1], dst_off = e[3], len = e[4];
      if (src >= nregions || dst >= nregions || src_off < 0 || dst_off < 0 || len < 0 || r[src].data == nullptr || r[dst].data == nullptr ||
          static_cast<uint64_t>(src_off + len) > r[src].len || static_cast<uint64_t>(dst_off + len) > r[dst].len) {
        bad++;
        continue;
      }
      memmove(r[dst].data + dst_off, r[src].data + src_off, static_cast<size_t>(len));
    }
    return Napi::Number::New(env, bad);
  }

  int32_t* plan_ = nullptr;
  uint32_t capacity_ = 0;
  Napi::Reference<Napi::Int32Array> plan_ref_;
  std::vector<Region> regions_;
  std::vector<Napi::Reference<Napi::Object>> refs_;
  std::vector<uint32_t> free_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("supported", Napi::Boolean::New(env, true));
  exports.Set("copyBytes", Napi::Function::New(env, CopyBytes, "copyBytes"));
  exports.Set("Receiver", Receiver::Init(env));
  exports.Set("Copier", Copier::Init(env));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("META_WORDS", META_WORDS);
  layout.Set("M_LEN", M_LEN);
  layout.Set("M_FLAGS", M_FLAGS);
  layout.Set("M_FAMILY", M_FAMILY);
  layout.Set("M_SRC4", M_SRC4);
  layout.Set("M_TS_SEC", M_TS_SEC);
  layout.Set("M_TS_NSEC", M_TS_NSEC);
  layout.Set("M_SRC_PORT", M_SRC_PORT);
  layout.Set("M_ORIG_LEN", M_ORIG_LEN);
  layout.Set("M_SRC6", M_SRC6);
  layout.Set("FLAG_TRUNC", FLAG_TRUNC);
  layout.Set("FLAG_CLOCK", FLAG_CLOCK);
  layout.Set("MAX_BATCH", MAX_BATCH);
  layout.Set("MIN_SLOT_BYTES", MIN_SLOT_BYTES);
  layout.Set("MAX_SLOT_BYTES", MAX_SLOT_BYTES);
  layout.Set("PLAN_WORDS", PLAN_WORDS);
  exports.Set("layout", layout);
  InitRing(env, exports);
  InitWriter(env, exports);
  // Bumped whenever the layout or the methods change, so a stale build is refused by the loader.
  exports.Set("abiVersion", Napi::Number::New(env, 2));
  return exports;
}

}  // namespace

#else  // not Linux: build an empty module that says why, so the loader can log one line.

namespace {
Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("supported", Napi::Boolean::New(env, false));
  exports.Set("reason", Napi::String::New(env, "the native receiver needs Linux (recvmmsg, SO_TIMESTAMPNS)"));
  return exports;
}
}  // namespace

#endif

NODE_API_MODULE(mirrorguard_native, InitModule)
