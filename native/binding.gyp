{
  # The optional N-API receiver (src/receiver.cc), capture ring (src/ring.cc, AF_PACKET TPACKET_V3) and batched file writes (src/writer.cc). Linux only: it is built around recvmmsg(2),
  # SO_TIMESTAMPNS and SO_RXQ_OVFL. Elsewhere the target compiles to an empty module that reports
  # itself unsupported, and mirrorguard uses node:dgram. Node's common.gypi already builds C++ as
  # gnu++17 with -O3 and without exceptions; node-addon-api is told not to expect them.
  "targets": [
    {
      "target_name": "mirrorguard_native",
      "sources": ["src/receiver.cc", "src/ring.cc", "src/writer.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      # The merge step of whole-window extractions (src/merge.cc, src/pcap/merge.ts MergeOptions.mergeStep):
      # its own module, loaded by src/api/native-merge.ts; no Linux-only calls.
      "target_name": "mirrorguard_merge",
      "sources": ["src/merge.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
