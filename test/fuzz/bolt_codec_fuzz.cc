// libFuzzer target for bolt::BoltCodec: incremental decode, re-decode of each frame's
// bytes, request id patching, local replies and heartbeat answers (rules in
// rpc_codec_fuzz.h).
//
// Built two ways: clang with -fsanitize=fuzzer,address,undefined over the sources it
// needs (as tools/fuzz does for the HTTP targets), and //test/fuzz:bolt_codec_fuzz_replay,
// which replays test/fuzz/corpus/bolt_codec in `bazel test`.
#include <cstddef>
#include <cstdint>

#include "extensions/codecs/bolt/bolt_codec.h"
#include "test/fuzz/rpc_codec_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tern::rpc::fuzz::fuzzOne<tern::bolt::BoltCodec>("bolt_codec_fuzz", data, size);
  return 0;
}
