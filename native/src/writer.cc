// pwriteBatch: the disk queue's writes of many files in ONE libuv work item (issue 16). With 10,000
// quiet sessions every flush interval hands 10,000 small buffers to the disk; through fs.promises each is
// its own threadpool request, promise and wake-up (~20-27 us of CPU each on the bench VM, against ~5 us for
// the pwrite(2) itself). Here JavaScript (src/pcap/disk-queue.ts) decides every write -- which descriptor,
// which buffer, how many bytes, at which offset -- and the addon only performs them, in order, on the
// threadpool, and reports each one's result:
//
//   pwriteBatch(fds Int32Array, positions Float64Array, lengths Int32Array, buffers Uint8Array[],
//               count, results Int32Array, done () => void)
//
// results[i] is 0 when all lengths[i] bytes of buffers[i] were written at positions[i] (short writes are
// continued), else -errno. After a failure on a descriptor its later entries in the batch are not tried
// (-ECANCELED): JavaScript commits a file's buffers in order, so nothing may land past a hole. The arrays
// are held by references until done() runs; the buffers' memory does not move (ArrayBuffer backing stores).
#ifdef __linux__

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <unistd.h>
#include <vector>

namespace {

struct Entry {
  int fd;
  const uint8_t* data;
  size_t len;
  off_t pos;
};

class BatchWrite : public Napi::AsyncWorker {
 public:
  BatchWrite(Napi::Function done, std::vector<Entry>&& entries, int32_t* results, Napi::Object keep)
      : Napi::AsyncWorker(done, "mirrorguard:pwriteBatch"), entries_(std::move(entries)), results_(results) {
    keep_ = Napi::Persistent(keep);
  }

  void Execute() override {
    std::vector<int> failed;
    for (size_t i = 0; i < entries_.size(); i++) {
      const Entry& e = entries_[i];
      bool skip = false;
      for (int f : failed) skip = skip || f == e.fd;
      if (skip) {
        results_[i] = -ECANCELED;
        continue;
      }
      size_t done = 0;
      int err = 0;
      int zero = 0;
      while (done < e.len) {
        ssize_t n = pwrite(e.fd, e.data + done, e.len - done, e.pos + static_cast<off_t>(done));
        if (n < 0) {
          if (errno == EINTR) continue;
          err = errno;
          break;
        }
        if (n == 0 && ++zero > 2) {
          err = EIO;
          break;
        }
        done += static_cast<size_t>(n);
      }
      results_[i] = err == 0 ? 0 : -err;
      if (err != 0) failed.push_back(e.fd);
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    Callback().Call({});
  }

 private:
  std::vector<Entry> entries_;
  int32_t* results_;
  Napi::ObjectReference keep_;
};

template <typename T>
T* TypedData(Napi::Value v, napi_typedarray_type want, size_t* len) {
  if (!v.IsTypedArray()) return nullptr;
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != want) return nullptr;
  *len = t.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
}

Napi::Value PwriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t nf = 0, np = 0, nl = 0, nr = 0;
  int32_t* fds = info.Length() >= 7 ? TypedData<int32_t>(info[0], napi_int32_array, &nf) : nullptr;
  double* pos = fds ? TypedData<double>(info[1], napi_float64_array, &np) : nullptr;
  int32_t* lens = pos ? TypedData<int32_t>(info[2], napi_int32_array, &nl) : nullptr;
  int32_t* results = lens ? TypedData<int32_t>(info[5], napi_int32_array, &nr) : nullptr;
  if (results == nullptr || !info[3].IsArray() || !info[4].IsNumber() || !info[6].IsFunction()) {
    Napi::TypeError::New(env, "pwriteBatch(fds, positions, lengths, buffers, count, results, done)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array bufs = info[3].As<Napi::Array>();
  int64_t count = info[4].As<Napi::Number>().Int64Value();
  if (count < 0 || static_cast<size_t>(count) > nf || static_cast<size_t>(count) > np || static_cast<size_t>(count) > nl ||
      static_cast<size_t>(count) > nr || static_cast<uint32_t>(count) > bufs.Length()) {
    Napi::RangeError::New(env, "pwriteBatch: count exceeds an array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(count));
  napi_value arr = bufs;
  for (int64_t i = 0; i < count; i++) {
    // Two N-API calls per buffer (the element, its typed-array info): this loop runs for every write.
    napi_value el;
    napi_typedarray_type t;
    size_t blen = 0;
    void* raw = nullptr;
    uint8_t* data = nullptr;
    if (napi_get_element(env, arr, static_cast<uint32_t>(i), &el) == napi_ok &&
        napi_get_typedarray_info(env, el, &t, &blen, &raw, nullptr, nullptr) == napi_ok && t == napi_uint8_array) {
      data = static_cast<uint8_t*>(raw);
    }
    if (data == nullptr || lens[i] < 0 || static_cast<size_t>(lens[i]) > blen || pos[i] < 0) {
      Napi::RangeError::New(env, "pwriteBatch: a buffer is not a Uint8Array of at least its length, or a position is negative").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    entries.push_back(Entry{fds[i], data, static_cast<size_t>(lens[i]), static_cast<off_t>(pos[i])});
  }
  // One object holds everything the worker touches until done() has run.
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("fds", info[0]);
  keep.Set("positions", info[1]);
  keep.Set("lengths", info[2]);
  keep.Set("buffers", info[3]);
  keep.Set("results", info[5]);
  BatchWrite* w = new BatchWrite(info[6].As<Napi::Function>(), std::move(entries), results, keep);
  w->Queue();
  return env.Undefined();
}

}  // namespace

void InitWriter(Napi::Env env, Napi::Object exports) {
  exports.Set("pwriteBatch", Napi::Function::New(env, PwriteBatch, "pwriteBatch"));
}

#endif
