// mirrorguard's native merge step (issue 11: whole-window extraction of interleaved files at mergecap's
// speed), and BackgroundSha256 (below), the body's SHA-256 on a threadpool thread. A separate module
// (mirrorguard_merge.node) so it loads and is tested on its own; it does I/O of no kind, and the merge step
// keeps no state between calls.
//
// src/pcap/merge.ts keeps the whole merge: opening, reading and refilling inputs, window ends, filters,
// pcapng and every other format, truncated files. When every input still in its heap is a classic
// little-endian nanosecond pcap of the output's link type and there is no filter, it hands the
// k-way step to mergeStep(): given each input's read buffer and the offset of its current (already
// parsed) record, this emits as many records as fit into the output chunk, in (seconds, nanoseconds,
// input index) order -- the JavaScript merge's order -- and says how far each input advanced.
//
//   mergeStep(out: Uint8Array, bufs: (Uint8Array | undefined)[], st: Float64Array): code
//
//   st[0]  OUT_OFF      in/out: where the next record goes in `out`
//   st[1]  HAS_FROM, st[2] FROM_SEC, st[3] FROM_NSEC     window start (inclusive)
//   st[4]  HAS_TO,   st[5] TO_SEC,   st[6] TO_NSEC       window end (exclusive)
//   st[7]  STOPPED      out: the input the code is about (-1: none)
//   st[8]  EMITTED      out: records written
//   st[9]  OUTSIDE      out: records before the window start, read and skipped
//   st[10] SNAPLEN      the largest caplen copied as is (262144)
//   per input i, at 16 + 4 * i:
//     +0 LIVE   1 when the input is in the merge's heap (its current record parsed and complete)
//     +1 POS    in/out: offset of its current record's 16-byte header in bufs[i]
//     +2 END    end of the valid bytes in bufs[i]
//     +3 COUNT  out: records of it consumed (written or skipped)
//
// Codes: OUT_FULL (the next record does not fit: push the chunk), TO_REACHED (the earliest record is at
// or past the window end: the merge is complete), ADVANCE (input STOPPED's current record was consumed
// and POS is its next record, which is not complete in the buffer or is too large: the JavaScript
// reader parses it, refilling first if need be), HEAD_JS (input STOPPED's current record is not a
// plain copy -- nanoseconds >= 10^9, caplen above SNAPLEN or above the original length, original length
// 0 -- so JavaScript writes or skips it as it does today). Every other input's POS is a complete
// record: JavaScript re-parses it there. Nothing is allocated; every offset is bounds-checked, and a
// bad argument returns BAD_ARGS without touching memory.
#include <napi.h>
#include "sha256.h"

#include <cstdint>
#include <cstring>
#include <atomic>
#include <deque>
#include <mutex>

namespace {

constexpr int OUT_FULL = 0;
constexpr int TO_REACHED = 1;
constexpr int ADVANCE = 2;
constexpr int HEAD_JS = 3;
constexpr int NO_INPUT = 4;
constexpr int BAD_ARGS = -1;

constexpr uint32_t ST_HEADER = 16;
constexpr uint32_t ST_PER_INPUT = 4;
constexpr uint32_t MAX_INPUTS = 4096;
constexpr uint32_t REC_HDR = 16;

inline uint32_t u32le(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

struct Input {
  const uint8_t* data;
  size_t pos;
  size_t end;
  uint64_t key;  // (seconds << 32) | nanoseconds of the current record: one compare, then the index
  double count;
};

// Inputs of one call (a thread's stack would do, but 4096 of them is 160 KiB: kept per thread instead).
thread_local Input g_in[MAX_INPUTS];
thread_local uint32_t g_heap[MAX_INPUTS];

inline bool Less(uint32_t a, uint32_t b) {
  const uint64_t ka = g_in[a].key, kb = g_in[b].key;
  return ka != kb ? ka < kb : a < b;
}

inline void SiftDown(uint32_t n, uint32_t at) {
  uint32_t c = at;
  for (;;) {
    const uint32_t l = 2 * c + 1, r = l + 1;
    uint32_t m = c;
    if (l < n && Less(g_heap[l], g_heap[m])) m = l;
    if (r < n && Less(g_heap[r], g_heap[m])) m = r;
    if (m == c) return;
    const uint32_t t = g_heap[c];
    g_heap[c] = g_heap[m];
    g_heap[m] = t;
    c = m;
  }
}

Napi::Value MergeStep(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (info.Length() < 3) return Napi::Number::New(env, BAD_ARGS);
  napi_typedarray_type t;
  napi_value ab;
  size_t byte_off;
  void* out_data = nullptr;
  size_t out_len = 0;
  void* st_data = nullptr;
  size_t st_len = 0;
  if (napi_get_typedarray_info(env, info[0], &t, &out_len, &out_data, &ab, &byte_off) != napi_ok || t != napi_uint8_array ||
      napi_get_typedarray_info(env, info[2], &t, &st_len, &st_data, &ab, &byte_off) != napi_ok || t != napi_float64_array) {
    return Napi::Number::New(env, BAD_ARGS);
  }
  bool is_array = false;
  if (napi_is_array(env, info[1], &is_array) != napi_ok || !is_array) return Napi::Number::New(env, BAD_ARGS);
  uint32_t n = 0;
  napi_get_array_length(env, info[1], &n);
  if (n > MAX_INPUTS || st_len < ST_HEADER + ST_PER_INPUT * static_cast<size_t>(n)) return Napi::Number::New(env, BAD_ARGS);
  double* st = static_cast<double*>(st_data);
  uint8_t* out = static_cast<uint8_t*>(out_data);
  const double out_off_d = st[0];
  if (!(out_off_d >= 0 && out_off_d <= static_cast<double>(out_len))) return Napi::Number::New(env, BAD_ARGS);
  size_t out_off = static_cast<size_t>(out_off_d);
  const bool has_from = st[1] != 0;
  const uint64_t from_key = has_from ? (static_cast<uint64_t>(st[2]) << 32) | static_cast<uint64_t>(st[3]) : 0;
  const bool has_to = st[4] != 0;
  const uint64_t to_key = has_to ? (static_cast<uint64_t>(st[5]) << 32) | static_cast<uint64_t>(st[6]) : 0;
  const uint32_t snaplen = static_cast<uint32_t>(st[10]);
  // A window bound whose nanoseconds exceed 32 bits cannot be keyed exactly: leave it to JavaScript.
  if ((has_from && (st[3] < 0 || st[3] >= 4294967296.0 || st[2] < 0 || st[2] >= 4294967296.0)) ||
      (has_to && (st[6] < 0 || st[6] >= 4294967296.0 || st[5] < 0 || st[5] >= 4294967296.0))) {
    return Napi::Number::New(env, BAD_ARGS);
  }

  // Gather the live inputs and check every offset before touching a byte.
  uint32_t h = 0;
  for (uint32_t i = 0; i < n; i++) {
    double* s = st + ST_HEADER + ST_PER_INPUT * i;
    s[3] = 0;
    if (s[0] == 0) continue;
    napi_value b;
    void* data = nullptr;
    size_t len = 0;
    if (napi_get_element(env, info[1], i, &b) != napi_ok ||
        napi_get_typedarray_info(env, b, &t, &len, &data, &ab, &byte_off) != napi_ok || t != napi_uint8_array) {
      return Napi::Number::New(env, BAD_ARGS);
    }
    const double pos = s[1], end = s[2];
    if (!(pos >= 0 && end <= static_cast<double>(len) && pos + REC_HDR <= end)) return Napi::Number::New(env, BAD_ARGS);
    Input& in = g_in[i];
    in.data = static_cast<const uint8_t*>(data);
    in.pos = static_cast<size_t>(pos);
    in.end = static_cast<size_t>(end);
    const uint8_t* r = in.data + in.pos;
    if (in.pos + REC_HDR + u32le(r + 8) > in.end) return Napi::Number::New(env, BAD_ARGS);
    in.key = (static_cast<uint64_t>(u32le(r)) << 32) | u32le(r + 4);
    in.count = 0;
    g_heap[h++] = i;
  }
  for (uint32_t k = h / 2; k-- > 0;) SiftDown(h, k);

  int code = NO_INPUT;
  int stopped = -1;
  double emitted = 0, outside = 0;
  while (h > 0) {
    const uint32_t i = g_heap[0];
    Input& in = g_in[i];
    const uint8_t* r = in.data + in.pos;
    const uint64_t key = in.key;
    if (has_to && key >= to_key) {
      code = TO_REACHED;
      break;
    }
    const uint32_t caplen = u32le(r + 8);
    const size_t total = REC_HDR + caplen;
    if (has_from && key < from_key) {
      outside++;
    } else {
      const uint32_t nsec = static_cast<uint32_t>(key);
      const uint32_t orig = u32le(r + 12);
      if (nsec >= 1000000000u || caplen > snaplen || caplen > orig || orig == 0) {
        code = HEAD_JS;
        stopped = static_cast<int>(i);
        break;
      }
      if (out_off + total > out_len) {
        code = OUT_FULL;
        break;
      }
      memcpy(out + out_off, r, total);
      out_off += total;
      emitted++;
    }
    in.count++;
    // The next record of this input: complete in the buffer and not oversized, or JavaScript takes over.
    const size_t next = in.pos + total;
    in.pos = next;
    if (next + REC_HDR > in.end) {
      code = ADVANCE;
      stopped = static_cast<int>(i);
      break;
    }
    const uint8_t* q = in.data + next;
    const uint32_t ncap = u32le(q + 8);
    if (ncap > snaplen || next + REC_HDR + ncap > in.end) {
      code = ADVANCE;
      stopped = static_cast<int>(i);
      break;
    }
    in.key = (static_cast<uint64_t>(u32le(q)) << 32) | u32le(q + 4);
    SiftDown(h, 0);
  }

  for (uint32_t i = 0; i < n; i++) {
    double* s = st + ST_HEADER + ST_PER_INPUT * i;
    if (s[0] == 0) continue;
    s[1] = static_cast<double>(g_in[i].pos);
    s[3] = g_in[i].count;
  }
  st[0] = static_cast<double>(out_off);
  st[7] = stopped;
  st[8] = emitted;
  st[9] = outside;
  return Napi::Number::New(env, code);
}

// BackgroundSha256: the SHA-256 of an extraction's body, computed on a libuv threadpool thread while the
// merge and the socket work on the main thread (issue 11, goal 2). update(buf, start, end) queues a
// chunk: it stays referenced until hashed and must not change until then (the merge reuses a chunk only
// once `pending` says it was hashed). One job at a time hashes the queue in order, taking each chunk
// as it comes without going back to the main thread between chunks, and ends when the queue is empty;
// the next update() starts another. wakeBelow(n) asks for onHashed(pending) (given to the constructor)
// once pending falls to n or below (the job then ends, and its completion on the main thread calls it
// and starts the next job): the merge's backpressure. digest(cb) calls cb(null, hex) once every
// queued chunk is hashed; later updates are refused. Node bundles OpenSSL and exports its symbols, so
// the EVP_* calls resolve against the running node.
class BackgroundSha256 : public Napi::ObjectWrap<BackgroundSha256> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BackgroundSha256",
                       {InstanceMethod<&BackgroundSha256::Update>("update"), InstanceMethod<&BackgroundSha256::Digest>("digest"),
                        InstanceMethod<&BackgroundSha256::WakeBelow>("wakeBelow"), InstanceAccessor<&BackgroundSha256::Pending>("pending"),
                        InstanceAccessor<&BackgroundSha256::Bytes>("bytes")});
  }

  explicit BackgroundSha256(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BackgroundSha256>(info) {
    Napi::Env env = info.Env();
    ctx_ = mirrorguard::NewSha256();
    if (ctx_ == nullptr) {
      Napi::Error::New(env, "BackgroundSha256: OpenSSL has no SHA-256 context").ThrowAsJavaScriptException();
      return;
    }
    if (info.Length() > 0 && info[0].IsFunction()) onHashed_ = Napi::Persistent(info[0].As<Napi::Function>());
  }

  ~BackgroundSha256() override {
    if (ctx_ != nullptr) EVP_MD_CTX_free(ctx_);
  }

 private:
  struct Chunk {
    const uint8_t* data;
    size_t len;
  };

  class Job : public Napi::AsyncWorker {
   public:
    Job(Napi::Env env, BackgroundSha256* owner) : Napi::AsyncWorker(env, "mirrorguard:sha256"), owner_(owner) {}
    void Execute() override { owner_->Drain(); }
    void OnOK() override { owner_->JobDone(Env()); }

   private:
    BackgroundSha256* owner_;
  };

  // On the threadpool: hash queued chunks until none is left. Only one Drain() runs at a time (running_).
  void Drain() {
    for (;;) {
      Chunk c;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) {
          running_ = false;
          return;
        }
        c = queue_.front();
        queue_.pop_front();
      }
      if (!failed_.load(std::memory_order_relaxed) && EVP_DigestUpdate(ctx_, c.data, c.len) != 1) failed_.store(true);
      uint64_t left = pending_.fetch_sub(c.len) - c.len;
      hashed_.fetch_add(1);
      // Asked to wake the merge: end this job, so its completion on the main thread calls onHashed (and
      // starts the next job at once if chunks are queued).
      if (left <= wakeBelow_.load() && wake_.exchange(false)) {
        woke_.store(true);
        std::lock_guard<std::mutex> lock(mu_);
        running_ = false;
        return;
      }
    }
  }

  // Main thread: drop the references of the chunks hashed so far.
  void Release() {
    uint64_t done = hashed_.load();
    while (released_ < done && !refs_.empty()) {
      refs_.front().Reset();
      refs_.pop_front();
      released_++;
    }
  }

  bool Idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return !running_ && queue_.empty();
  }

  void JobDone(Napi::Env env) {
    Release();
    bool restart = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!running_ && !queue_.empty()) restart = running_ = true;
    }
    if (restart) (new Job(env, this))->Queue();
    if (woke_.exchange(false) && !onHashed_.IsEmpty()) onHashed_.Call({Napi::Number::New(env, static_cast<double>(pending_.load()))});
    if (Idle()) {
      if (!self_.IsEmpty()) self_.Reset();
      if (!onDone_.IsEmpty()) Finish(env);
    }
  }

  void Finish(Napi::Env env) {
    Napi::Function cb = onDone_.Value();
    onDone_.Reset();
    std::string hex;
    if (failed_.load() || !mirrorguard::FinishHex(ctx_, &hex)) {
      cb.Call({Napi::Error::New(env, "SHA-256 failed").Value()});
      return;
    }
    cb.Call({env.Null(), Napi::String::New(env, hex)});
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ended_) {
      Napi::Error::New(env, "BackgroundSha256: update after digest").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "update(buf: Uint8Array, start, end)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array u8 = info[0].As<Napi::Uint8Array>();
    double start = info[1].As<Napi::Number>().DoubleValue();
    double end = info[2].As<Napi::Number>().DoubleValue();
    if (!(start >= 0 && end >= start && end <= static_cast<double>(u8.ByteLength()))) {
      Napi::RangeError::New(env, "update: start/end outside the buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t len = static_cast<size_t>(end - start);
    Release();
    if (len == 0) return env.Undefined();
    refs_.push_back(Napi::Persistent(u8));
    pending_.fetch_add(len);
    bytes_ += static_cast<double>(len);
    bool start_job = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Chunk{u8.Data() + static_cast<size_t>(start), len});
      if (!running_) {
        running_ = true;
        start_job = true;
      }
    }
    if (start_job) {
      // Kept alive while a job runs, whatever JavaScript still holds.
      if (self_.IsEmpty()) self_ = Napi::Persistent(Value());
      (new Job(env, this))->Queue();
    }
    return env.Undefined();
  }

  // wakeBelow(n): call onHashed once pending <= n. False (and no call) when it already is.
  Napi::Value WakeBelow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (onHashed_.IsEmpty() || info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "wakeBelow(bytes), with onHashed given to the constructor").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t n = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    wakeBelow_.store(n);
    wake_.store(true);
    // The job may have passed below before the flag was seen: look again.
    if (pending_.load() <= n) {
      bool was = wake_.exchange(false);
      if (was) return Napi::Boolean::New(env, false);
      // The job took the flag and has queued the call: it will come.
    }
    return Napi::Boolean::New(env, true);
  }

  Napi::Value Digest(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ended_ || info.Length() < 1 || !info[0].IsFunction()) {
      Napi::Error::New(env, "digest(cb), once").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    ended_ = true;
    onDone_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (Idle()) {
      Release();
      Finish(env);
    }
    return env.Undefined();
  }

  Napi::Value Pending(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(pending_.load())); }
  Napi::Value Bytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), bytes_); }

  EVP_MD_CTX* ctx_ = nullptr;
  std::mutex mu_;
  std::deque<Chunk> queue_;  // guarded by mu_
  bool running_ = false;     // guarded by mu_: a Drain() is hashing (it alone touches ctx_ then)
  std::atomic<uint64_t> pending_{0};
  std::atomic<uint64_t> hashed_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> wake_{false};
  std::atomic<bool> woke_{false};
  std::atomic<uint64_t> wakeBelow_{0};
  std::deque<Napi::Reference<Napi::Uint8Array>> refs_;  // main thread: the queued chunks, in order
  uint64_t released_ = 0;
  double bytes_ = 0;
  bool ended_ = false;
  Napi::FunctionReference onHashed_;
  Napi::FunctionReference onDone_;
  Napi::ObjectReference self_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("BackgroundSha256", BackgroundSha256::Define(env));
  exports.Set("mergeStep", Napi::Function::New(env, MergeStep, "mergeStep"));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("ST_HEADER", ST_HEADER);
  layout.Set("ST_PER_INPUT", ST_PER_INPUT);
  layout.Set("MAX_INPUTS", MAX_INPUTS);
  layout.Set("OUT_FULL", OUT_FULL);
  layout.Set("TO_REACHED", TO_REACHED);
  layout.Set("ADVANCE", ADVANCE);
  layout.Set("HEAD_JS", HEAD_JS);
  layout.Set("NO_INPUT", NO_INPUT);
  exports.Set("layout", layout);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(mirrorguard_merge, InitModule)
