// SHA-256 with OpenSSL's EVP, shared by the two addons (writer.cc's FileSha256, merge.cc's
// BackgroundSha256). Node bundles OpenSSL and exports its symbols, so the EVP_* calls resolve against the
// running node; nothing is linked in.
#pragma once

#include <openssl/evp.h>

#include <string>

namespace mirrorguard {

/** A SHA-256 context ready for updates, or nullptr when OpenSSL cannot make one. */
inline EVP_MD_CTX* NewSha256() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    ctx = nullptr;
  }
  return ctx;
}

/** Finish ctx into lowercase hex in *out; false when OpenSSL fails. ctx takes no more updates. */
inline bool FinishHex(EVP_MD_CTX* ctx, std::string* out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx, md, &n) != 1) return false;
  static const char hex[] = "0123456789abcdef";
  out->resize(2 * n);
  for (unsigned int i = 0; i < n; i++) {
    (*out)[2 * i] = hex[md[i] >> 4];
    (*out)[2 * i + 1] = hex[md[i] & 15];
  }
  return true;
}

}  // namespace mirrorguard
