// pwriteBatch: the disk queue's writes of many files in ONE libuv work item (issue 16). With 10,000
// quiet sessions every flush interval hands 10,000 small buffers to the disk; through fs.promises each is
// its own threadpool request, promise and wake-up (~20-27 us of CPU each on the bench VM, against ~5 us for
// the pwrite(2) itself). Here JavaScript (src/pcap/disk-queue.ts) decides every write -- which descriptor,
// which buffer, how many bytes, at which offset -- and the addon only performs them, in order, on the
// threadpool, and reports each one's result:
//
//   pwriteBatch(fds Int32Array, positions Float64Array, lengths Int32Array, buffers Uint8Array[],
//               count, results Int32Array, done () => void, dropWindow = 0, hashes = null, directBytes = 0,
//               stats = null)
//
// dropWindow > 0 turns on drop-behind (BatchWrite::DropBehind below): written windows of each file are
// sent to disk and dropped from the page cache as the file grows. directBytes > 0 turns on direct writes
// (BatchWrite::DirectRange): a write with at least that many bytes of whole pages inside it writes those
// pages with O_DIRECT, past the page cache, and only its partial first and last pages through it. stats
// (a Float64Array of at least 2, or null): the job adds the bytes it wrote with O_DIRECT to stats[0] and
// the writes whose O_DIRECT the file system or device refused (written through the cache instead) to stats[1].
//
// results[i] is 0 when all lengths[i] bytes of buffers[i] were written at positions[i] (short writes are
// continued), else -errno. Consecutive entries of one descriptor that follow each other on disk (a file's
// queued buffers, a new file's header and first buffer) are written by one pwritev(2). After a failure on a descriptor its later entries in the batch are not tried
// (-ECANCELED): JavaScript commits a file's buffers in order, so nothing may land past a hole. The arrays
// are held by references until done() runs; the buffers' memory does not move (ArrayBuffer backing stores).
//
// A 9th argument, hashes (an array of FileSha256, or null, per entry), hashes each entry's bytes into its
// file's SHA-256 on the threadpool thread, just before the pwritev(2) that writes them (whose copy then
// reads them from this core's cache), and keeps them in the hash only when results[i] is 0: a failed
// write puts the hash back as it was and adds the entries written whole before the failure, so a file's
// hash is always of its committed bytes (JavaScript commits a file's entries in order up to its first
// failure, and after a failure its later entries are not tried). The main thread no longer reads every
// captured byte a second time, on another core, after the write (issue 11). A file is in at most one
// batch at a time (src/pcap/disk-queue.ts runs one job per file), so no two threads touch one hash at once.
#ifdef __linux__

#include <napi.h>
#include "sha256.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace {

/** iovecs per pwritev(2), at most (IOV_MAX is 1024 on Linux). */
constexpr size_t kMaxIov = 256;
/** Bytes of one pwritev(2) whose entries are hashed, at most (about a core's L2 cache; see Execute). */
constexpr size_t kMaxHashedGroup = 1 << 20;
/** Direct writes: file offsets, lengths and memory on page boundaries (enough for any block device's). */
constexpr off_t kDirectAlign = 4096;
/** A direct write's bounce buffer, per threadpool thread: one write of at most this much. */
constexpr size_t kBounceBytes = 1 << 20;

// FileSha256: one capture file's running SHA-256 (OpenSSL's EVP, from the running node, as in merge.cc),
// updated by pwriteBatch on the threadpool or by update() on the main thread, never both at once.
//
//   new FileSha256(); h.update(buf Uint8Array); h.digest() -> hex (once; later calls throw)
class FileSha256 : public Napi::ObjectWrap<FileSha256> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FileSha256", {InstanceMethod<&FileSha256::UpdateJs>("update"), InstanceMethod<&FileSha256::DigestJs>("digest")});
  }

  // Tells pwriteBatch's unwrap that an object is a FileSha256 (napi_unwrap alone would take any wrapped object).
  static constexpr napi_type_tag kTag = {0x6d6972726f726775ULL, 0x617264736861ULL};

  explicit FileSha256(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileSha256>(info) {
    Napi::Env env = info.Env();
    ctx_ = mirrorguard::NewSha256();
    if (ctx_ == nullptr) {
      Napi::Error::New(env, "FileSha256: OpenSSL has no SHA-256 context").ThrowAsJavaScriptException();
      return;
    }
    napi_type_tag_object(env, info.This(), &kTag);
  }

  ~FileSha256() override {
    if (ctx_ != nullptr) EVP_MD_CTX_free(ctx_);
  }

  // The threadpool's update (pwriteBatch). A failure is kept and reported by digest().
  void Add(const uint8_t* data, size_t len) {
    if (!failed_ && !ended_ && EVP_DigestUpdate(ctx_, data, len) != 1) failed_ = true;
  }

  bool Usable() const { return ctx_ != nullptr && !ended_; }

  // The state before a write, to go back to when the write fails (the bytes were hashed first).
  bool SaveTo(EVP_MD_CTX* save) const { return EVP_MD_CTX_copy_ex(save, ctx_) == 1; }
  void RestoreFrom(const EVP_MD_CTX* save) {
    if (EVP_MD_CTX_copy_ex(ctx_, save) != 1) failed_ = true;
  }

 private:
  Napi::Value UpdateJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "update(buf: Uint8Array)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!Usable()) {
      Napi::Error::New(env, "FileSha256: update after digest").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array u8 = info[0].As<Napi::Uint8Array>();
    Add(u8.Data(), u8.ByteLength());
    return env.Undefined();
  }

  Napi::Value DigestJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Usable()) {
      Napi::Error::New(env, "FileSha256: digest called twice").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    ended_ = true;
    std::string hex;
    if (failed_ || !mirrorguard::FinishHex(ctx_, &hex)) {
      Napi::Error::New(env, "FileSha256: SHA-256 failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::String::New(env, hex);
  }

  EVP_MD_CTX* ctx_ = nullptr;
  bool failed_ = false;
  bool ended_ = false;
};

constexpr napi_type_tag FileSha256::kTag;

struct Entry {
  int fd;
  const uint8_t* data;
  size_t len;
  off_t pos;
  FileSha256* hash;  // null: not hashed here
};

class BatchWrite : public Napi::AsyncWorker {
 public:
  BatchWrite(Napi::Function done, std::vector<Entry>&& entries, int32_t* results, Napi::Object keep, off_t dropWindow, size_t directBytes, double* stats)
      : Napi::AsyncWorker(done, "mirrorguard:pwriteBatch"), entries_(std::move(entries)), results_(results), dropWindow_(dropWindow), directBytes_(directBytes), stats_(stats) {
    keep_ = Napi::Persistent(keep);
  }

  ~BatchWrite() override {
    if (save_ != nullptr) EVP_MD_CTX_free(save_);
  }

  void Execute() override {
    std::vector<int> failed;
    std::vector<struct iovec> iov;
    size_t i = 0;
    while (i < entries_.size()) {
      const Entry& e = entries_[i];
      bool skip = false;
      for (int f : failed) skip = skip || f == e.fd;
      if (skip) {
        results_[i] = -ECANCELED;
        i++;
        continue;
      }
      // Entries i..j-1 of one descriptor that follow each other on disk go in one pwritev(2): a file the
      // disk is behind on has several buffers queued, and under the kernel's writeback each write costs
      // the kernel 20-40 us whatever its size (issue 16), so fewer, larger writes keep up.
      // A hashed group stops at kMaxHashedGroup bytes: its bytes are hashed first and then written, and
      // the write's copy finds them still in this core's cache (the buffers were filled on another core).
      FileSha256* hash = e.hash;
      size_t j = i + 1;
      size_t total = e.len;
      while (j < entries_.size() && j - i < kMaxIov && entries_[j].fd == e.fd && entries_[j].hash == hash &&
             entries_[j].pos == entries_[j - 1].pos + static_cast<off_t>(entries_[j - 1].len) &&
             (hash == nullptr || total < kMaxHashedGroup)) {
        total += entries_[j].len;
        j++;
      }
      iov.clear();
      for (size_t k = i; k < j; k++) iov.push_back({const_cast<uint8_t*>(entries_[k].data), entries_[k].len});
      bool saved = false;
      if (hash != nullptr) {
        if (save_ == nullptr) save_ = EVP_MD_CTX_new();
        saved = save_ != nullptr && hash->SaveTo(save_);
        if (saved) {
          for (size_t k = i; k < j; k++) hash->Add(entries_[k].data, entries_[k].len);
        }
      }
      size_t done = 0;
      int err = WriteGroup(e.fd, iov, e.pos, total, &done);
      // Each entry's own result: written whole (0), or the error for it and every one after it.
      size_t at = 0;
      for (size_t k = i; k < j; k++) {
        at += entries_[k].len;
        results_[k] = (err == 0 || at <= done) ? 0 : -err;
      }
      // The hash covers the committed bytes only: after a failure, back to before the group, then the
      // entries written whole before it (JavaScript commits those). Without a saved state (no memory for
      // a context), the committed entries are hashed now.
      if (hash != nullptr && (err != 0 || !saved)) {
        if (saved) hash->RestoreFrom(save_);
        for (size_t k = i; k < j && results_[k] == 0; k++) hash->Add(entries_[k].data, entries_[k].len);
      }
      if (err != 0) failed.push_back(e.fd);
      else if (dropWindow_ > 0) DropBehind(e.fd, e.pos, e.pos + static_cast<off_t>(total));
      i = j;
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    Callback().Call({});
  }

 private:
  // Writes bytes [done, total) of a group (iov, at file position pos); *done counts the bytes written from
  // its start. 0, or the errno that stopped it. With direct writes on (directBytes_) and at least that many
  // whole pages inside the group, the pages are written with O_DIRECT from an aligned copy and only the
  // partial pages at either end go through the page cache (see DirectRange).
  int WriteGroup(int fd, const std::vector<struct iovec>& iov, off_t pos, size_t total, size_t* done) {
    if (directBytes_ > 0) {
      off_t start = (pos + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
      off_t end = (pos + static_cast<off_t>(total)) / kDirectAlign * kDirectAlign;
      if (end > start && static_cast<size_t>(end - start) >= directBytes_) {
        int err = BufferedRange(fd, iov, pos, static_cast<size_t>(start - pos), done);
        if (err != 0) return err;
        err = DirectRange(fd, iov, pos, static_cast<size_t>(end - pos), done);
        if (err != 0) return err;
      }
    }
    return BufferedRange(fd, iov, pos, total, done);
  }

  // pwritev(2) of bytes [*done, to) of the group, short writes continued.
  int BufferedRange(int fd, const std::vector<struct iovec>& iov, off_t pos, size_t to, size_t* done) {
    if (*done >= to) return 0;
    Slice(iov, *done, to);
    size_t first = 0;  // the first iovec of part_ not yet written whole
    int zero = 0;
    while (*done < to) {
      ssize_t n = pwritev(fd, part_.data() + first, static_cast<int>(part_.size() - first), pos + static_cast<off_t>(*done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0 && ++zero > 2) return EIO;
      *done += static_cast<size_t>(n);
      // Skip the iovecs written whole; trim the one written in part.
      size_t left = static_cast<size_t>(n);
      while (first < part_.size() && left >= part_[first].iov_len) {
        left -= part_[first].iov_len;
        first++;
      }
      if (first < part_.size() && left > 0) {
        part_[first].iov_base = static_cast<uint8_t*>(part_[first].iov_base) + left;
        part_[first].iov_len -= left;
      }
    }
    return 0;
  }

  // part_ = the iovecs of bytes [from, to) of the group.
  void Slice(const std::vector<struct iovec>& iov, size_t from, size_t to) {
    part_.clear();
    size_t at = 0;
    for (const struct iovec& v : iov) {
      size_t lo = at, hi = at + v.iov_len;
      at = hi;
      if (hi <= from) continue;
      if (lo >= to) break;
      size_t a = from > lo ? from - lo : 0;
      size_t b = (to < hi ? to : hi) - lo;
      part_.push_back({static_cast<uint8_t*>(v.iov_base) + a, b - a});
    }
  }

  // Whole pages [*done, to) of the group (*done and pos + to on page boundaries) with O_DIRECT: copied into
  // this thread's aligned bounce buffer (the group was just hashed, so the copy reads this core's cache)
  // and written past the page cache. The buffered write it replaces costs the kernel a copy into fresh
  // page-cache pages, their dirty and LRU accounting, the writeback, and then drop-behind's freeing of
  // them (about 0.25 against 0.08 ns a byte of CPU on the bench VM, docs/performance.md). O_DIRECT is set
  // on the descriptor for this range only and put back after it. 0 when the range is written or direct
  // writes are refused here (a file system without O_DIRECT, an alignment the device wants larger, no
  // memory for the buffer, a short write off a page boundary): the caller writes the rest buffered.
  int DirectRange(int fd, const std::vector<struct iovec>& iov, off_t pos, size_t to, size_t* done) {
    uint8_t* bounce = Bounce();
    if (bounce == nullptr) return 0;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) {
      if (stats_ != nullptr) stats_[1] += 1;
      return 0;
    }
    int err = 0;
    int zero = 0;
    while (*done < to) {
      size_t n = to - *done;
      if (n > kBounceBytes) n = kBounceBytes;
      Slice(iov, *done, *done + n);
      size_t at = 0;
      for (const struct iovec& v : part_) {
        memcpy(bounce + at, v.iov_base, v.iov_len);
        at += v.iov_len;
      }
      ssize_t w = pwrite(fd, bounce, n, pos + static_cast<off_t>(*done));
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno != EINVAL) err = errno;
        else if (stats_ != nullptr) stats_[1] += 1;
        break;
      }
      if (w == 0) {
        if (++zero > 2) break;
        continue;
      }
      *done += static_cast<size_t>(w);
      if (stats_ != nullptr) stats_[0] += static_cast<double>(w);
      if ((pos + static_cast<off_t>(*done)) % kDirectAlign != 0) break;
    }
    fcntl(fd, F_SETFL, flags);
    return err;
  }

  // This threadpool thread's bounce buffer for direct writes (kBounceBytes, page-aligned), made at its
  // first direct write and kept for the thread's life; null when there is no memory for it.
  static uint8_t* Bounce() {
    static thread_local uint8_t* buf = nullptr;
    if (buf == nullptr) {
      void* p = nullptr;
      if (posix_memalign(&p, kDirectAlign, kBounceBytes) != 0) return nullptr;
      buf = static_cast<uint8_t*>(p);
    }
    return buf;
  }

  // Drop-behind: a write that completes a window of the file (dropWindow_, or the write's own size rounded
  // up to a power of two when larger) asks the kernel to start writing that window out and to drop the
  // windows before it from the page cache (POSIX_FADV_DONTNEED writes dirty pages back without waiting and
  // drops only clean ones; a page still under writeback gets a second chance at the next window). Files are
  // append-only below the window, so a dropped page is never read back to be written again. Without it,
  // every byte captured stays cached until memory runs out: 10,000 sessions fill gigabytes of page cache a
  // minute, and on a VM whose memory is backed on first touch, zeroing those fresh pages made each write
  // 4-5 times dearer (docs/performance.md, "Drop-behind").
  void DropBehind(int fd, off_t from, off_t to) {
    off_t w = dropWindow_;
    while (w < to - from && w < (off_t{1} << 30)) w <<= 1;
    off_t b = to / w * w;
    if (b <= from || b == 0) return;
    off_t lo = b > 3 * w ? b - 3 * w : 0;
    posix_fadvise(fd, lo, b - lo, POSIX_FADV_DONTNEED);
  }

  std::vector<Entry> entries_;
  int32_t* results_;
  off_t dropWindow_;
  size_t directBytes_;  // 0: no direct writes; else the fewest whole pages' bytes a group writes with O_DIRECT
  double* stats_;       // null, or [bytes written with O_DIRECT, direct writes refused]: this job adds to them
  std::vector<struct iovec> part_;  // a slice of a group's iovecs
  EVP_MD_CTX* save_ = nullptr;  // a hashed group's state before it was hashed
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
  // The optional hashes: an array of FileSha256 or null per entry. A file's entries follow each other, so
  // an entry whose hash is the same object as the one before's takes it without another check and unwrap.
  napi_value hashes = nullptr;
  if (info.Length() >= 9 && !info[8].IsUndefined() && !info[8].IsNull()) {
    if (!info[8].IsArray() || static_cast<uint32_t>(count) > info[8].As<Napi::Array>().Length()) {
      Napi::TypeError::New(env, "pwriteBatch: hashes is not an array of at least count entries").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    hashes = info[8];
  }
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(count));
  napi_value arr = bufs;
  napi_value lastHashObj = nullptr;
  FileSha256* lastHash = nullptr;
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
    FileSha256* h = nullptr;
    if (hashes != nullptr) {
      napi_value hv;
      napi_valuetype ht;
      if (napi_get_element(env, hashes, static_cast<uint32_t>(i), &hv) != napi_ok || napi_typeof(env, hv, &ht) != napi_ok) {
        Napi::TypeError::New(env, "pwriteBatch: a hash cannot be read").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      if (ht == napi_object) {
        bool same = false;
        if (lastHashObj != nullptr) napi_strict_equals(env, hv, lastHashObj, &same);
        if (same) {
          h = lastHash;
        } else {
          bool tagged = false;
          void* raw = nullptr;
          if (napi_check_object_type_tag(env, hv, &FileSha256::kTag, &tagged) != napi_ok || !tagged || napi_unwrap(env, hv, &raw) != napi_ok ||
              raw == nullptr || !static_cast<FileSha256*>(raw)->Usable()) {
            Napi::TypeError::New(env, "pwriteBatch: a hash is not a FileSha256 still open").ThrowAsJavaScriptException();
            return env.Undefined();
          }
          h = static_cast<FileSha256*>(raw);
          lastHashObj = hv;
          lastHash = h;
        }
      } else if (ht != napi_null && ht != napi_undefined) {
        Napi::TypeError::New(env, "pwriteBatch: a hash is neither a FileSha256 nor null").ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    entries.push_back(Entry{fds[i], data, static_cast<size_t>(lens[i]), static_cast<off_t>(pos[i]), h});
  }
  // One object holds everything the worker touches until done() has run.
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("fds", info[0]);
  keep.Set("positions", info[1]);
  keep.Set("lengths", info[2]);
  keep.Set("buffers", info[3]);
  keep.Set("results", info[5]);
  if (hashes != nullptr) keep.Set("hashes", info[8]);
  off_t dropWindow = info.Length() >= 8 && info[7].IsNumber() ? static_cast<off_t>(info[7].As<Napi::Number>().Int64Value()) : 0;
  int64_t direct = info.Length() >= 10 && info[9].IsNumber() ? info[9].As<Napi::Number>().Int64Value() : 0;
  double* stats = nullptr;
  if (info.Length() >= 11 && !info[10].IsUndefined() && !info[10].IsNull()) {
    size_t ns = 0;
    stats = TypedData<double>(info[10], napi_float64_array, &ns);
    if (stats == nullptr || ns < 2) {
      Napi::TypeError::New(env, "pwriteBatch: stats is not a Float64Array of at least 2").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    keep.Set("stats", info[10]);
  }
  BatchWrite* w = new BatchWrite(info[6].As<Napi::Function>(), std::move(entries), results, keep, dropWindow > 0 ? dropWindow : 0,
                                 direct > 0 ? static_cast<size_t>(direct) : 0, stats);
  w->Queue();
  return env.Undefined();
}

// openBatch: create many capture files in ONE libuv work item (issue 16). 10,000 sessions starting at once
// need 10,000 new files; through fs.promises each create is its own threadpool request and wake-up, and the
// files trickled in at 400-2,000 a second on the bench VM while their records waited in memory.
//
//   openBatch(paths string[], count, mode, makeDirs, results Int32Array, done () => void)
//
// Each path is opened O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC with `mode` (never clobbering a file); when its
// folder is missing and makeDirs is true, the folder is made (mkdir -p, 0777 less the umask, as
// fs.mkdir does) and the open tried again, up to three times (retention may remove an emptied folder in
// between). results[i] is the descriptor, or -errno. JavaScript owns every descriptor returned.

/** mkdir -p of the folder holding `path`; 0 or an errno. */
int MakeParents(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return 0;
  std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); i++) {
    if (i != dir.size() && dir[i] != '/') continue;
    std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0777) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

class OpenBatch : public Napi::AsyncWorker {
 public:
  OpenBatch(Napi::Function done, std::vector<std::string>&& paths, int mode, bool makeDirs, int32_t* results, Napi::Object keep)
      : Napi::AsyncWorker(done, "mirrorguard:openBatch"), paths_(std::move(paths)), mode_(mode), makeDirs_(makeDirs), results_(results) {
    keep_ = Napi::Persistent(keep);
  }

  void Execute() override {
    for (size_t i = 0; i < paths_.size(); i++) {
      int fd = -1;
      int err = 0;
      for (int attempt = 0;; attempt++) {
        fd = open(paths_[i].c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_);
        if (fd >= 0) break;
        err = errno;
        if (err == EINTR) continue;
        if (err != ENOENT || !makeDirs_ || attempt >= 3) break;
        int m = MakeParents(paths_[i]);
        if (m != 0) {
          err = m;
          break;
        }
      }
      results_[i] = fd >= 0 ? fd : -err;
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    Callback().Call({});
  }

 private:
  std::vector<std::string> paths_;
  int mode_;
  bool makeDirs_;
  int32_t* results_;
  Napi::ObjectReference keep_;
};

Napi::Value OpenBatchFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t nr = 0;
  int32_t* results = info.Length() >= 6 ? TypedData<int32_t>(info[4], napi_int32_array, &nr) : nullptr;
  if (results == nullptr || !info[0].IsArray() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsBoolean() || !info[5].IsFunction()) {
    Napi::TypeError::New(env, "openBatch(paths, count, mode, makeDirs, results, done)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  int64_t count = info[1].As<Napi::Number>().Int64Value();
  if (count < 0 || static_cast<size_t>(count) > nr || static_cast<uint32_t>(count) > arr.Length()) {
    Napi::RangeError::New(env, "openBatch: count exceeds an array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::string> paths;
  paths.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; i++) {
    Napi::Value v = arr.Get(static_cast<uint32_t>(i));
    if (!v.IsString()) {
      Napi::TypeError::New(env, "openBatch: a path is not a string").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string p = v.As<Napi::String>().Utf8Value();
    if (p.empty() || p.find('\0') != std::string::npos) {
      Napi::TypeError::New(env, "openBatch: a path is empty or holds a NUL").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    paths.push_back(std::move(p));
  }
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("results", info[4]);
  OpenBatch* w = new OpenBatch(info[5].As<Napi::Function>(), std::move(paths), info[2].As<Napi::Number>().Int32Value(),
                               info[3].As<Napi::Boolean>().Value(), results, keep);
  w->Queue();
  return env.Undefined();
}

// dropCache: after a capture file is closed for good (synced), ask the kernel to drop what is left of it
// in the page cache (posix_fadvise POSIX_FADV_DONTNEED over the whole file, on the threadpool). With
// drop-behind (pwriteBatch's dropWindow) only the last few windows are still cached.
//
//   dropCache(fd, done () => void)
class DropCache : public Napi::AsyncWorker {
 public:
  DropCache(Napi::Function done, int fd) : Napi::AsyncWorker(done, "mirrorguard:dropCache"), fd_(fd) {}
  void Execute() override { posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED); }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    Callback().Call({});
  }

 private:
  int fd_;
};

Napi::Value DropCacheFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "dropCache(fd, done)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  DropCache* w = new DropCache(info[1].As<Napi::Function>(), info[0].As<Napi::Number>().Int32Value());
  w->Queue();
  return env.Undefined();
}

// The write-buffer pool's region (src/pcap/region.ts): one ArrayBuffer carved into buffers by a buddy
// allocator, so buffers that come and go never fragment malloc's heap, and memory the pool lets go can be
// handed back to the kernel at once instead of when V8 next collects.
//
//   pageOffset(ab ArrayBuffer) -> bytes from the start of ab to its first page boundary
//   releasePages(ab ArrayBuffer, offset, length) -> bytes handed back
//
// releasePages drops the whole pages inside [offset, offset + length) with madvise(MADV_DONTNEED): they
// read back as zeros and count in RSS again only once written. A partial page at either end is kept, so
// the call never touches a byte outside the range.
Napi::Value PageOffsetFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "pageOffset(arrayBuffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t p = reinterpret_cast<uintptr_t>(info[0].As<Napi::ArrayBuffer>().Data());
  return Napi::Number::New(env, static_cast<double>((page - p % page) % page));
}

Napi::Value ReleasePagesFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "releasePages(arrayBuffer, offset, length)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  const int64_t off = info[1].As<Napi::Number>().Int64Value();
  const int64_t len = info[2].As<Napi::Number>().Int64Value();
  if (off < 0 || len < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(len) > ab.ByteLength()) {
    Napi::RangeError::New(env, "releasePages: the range is outside the ArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t from = reinterpret_cast<uintptr_t>(ab.Data()) + static_cast<uintptr_t>(off);
  const uintptr_t start = (from + page - 1) / page * page;
  const uintptr_t end = (from + static_cast<uintptr_t>(len)) / page * page;
  if (end <= start) return Napi::Number::New(env, 0);
  if (madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) != 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, static_cast<double>(end - start));
}

}  // namespace

void InitWriter(Napi::Env env, Napi::Object exports) {
  exports.Set("pageOffset", Napi::Function::New(env, PageOffsetFn, "pageOffset"));
  exports.Set("releasePages", Napi::Function::New(env, ReleasePagesFn, "releasePages"));
  exports.Set("pwriteBatch", Napi::Function::New(env, PwriteBatch, "pwriteBatch"));
  exports.Set("openBatch", Napi::Function::New(env, OpenBatchFn, "openBatch"));
  exports.Set("dropCache", Napi::Function::New(env, DropCacheFn, "dropCache"));
  exports.Set("FileSha256", FileSha256::Define(env));
}

#endif
