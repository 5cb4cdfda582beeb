#pragma once

// The body of the RPC codec fuzz targets (bolt_codec_fuzz.cc, dubbo_codec_fuzz.cc).
//
// Input layout: byte 0 picks the options (frame size limit, block size), byte 1 seeds how
// the rest is cut into reads (0: one byte at a time); the rest is the bytes from a peer.
//
// The input is decoded twice: in one read, and cut into pieces with a decode after each.
// Besides not crashing (ASan/UBSan in the libFuzzer build), the codec must
//   - give the same frames and the same error however the input is cut;
//   - leave no buffer block behind;
//   - for every frame: decode its raw bytes alone to the same frame, detect() them as its
//     protocol, patch its request id and back (the frame reads the same but for the id,
//     then the bytes are the original ones), and for requests produce local replies and
//     heartbeat answers that decode to non-success responses with the request's id.
// A broken rule aborts with a description on stderr.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"
#include "source/common/rpc/codec.h"

namespace tern {
namespace rpc {
namespace fuzz {

[[noreturn]] inline void fail(const char* target, const std::string& what,
                              absl::string_view input) {
  fprintf(stderr, "%s: %s\ninput: \"%s\"\n", target, what.c_str(),
          absl::CEscape(input).c_str());
  abort();
}

// Deterministic piece lengths from a seed: seed 0 is one byte at a time; otherwise 1..16
// and now and then up to 512.
inline std::vector<size_t> cuts(uint8_t seed, size_t total) {
  std::vector<size_t> out;
  uint32_t x = seed * 2654435761u + 12345;
  size_t at = 0;
  while (at < total) {
    x = x * 1103515245u + 12345;
    size_t n = seed == 0 ? 1 : (x >> 16) % 8 == 0 ? 1 + (x >> 8) % 512 : 1 + (x >> 20) % 16;
    n = std::min(n, total - at);
    out.push_back(n);
    at += n;
  }
  return out;
}

class Harness {
public:
  // `peer` decodes what the codec writes (under the peer's own limits).
  Harness(const char* target, const Codec& codec, const Codec& peer, absl::string_view input,
          uint32_t block_size)
      : target_(target), codec_(codec), peer_(peer), input_(input), block_size_(block_size) {}

  // Decodes the input in `pieces` (empty: one read). Returns one line per frame and the
  // outcome; keeps the frames when `frames` is given.
  std::string run(const std::vector<size_t>& pieces, std::vector<FramePtr>* frames) {
    buffer::BlockPool pool(block_size_);
    std::string log;
    {
      buffer::Buffer in(&pool);
      std::vector<FramePtr> kept;
      absl::Status st;
      auto decodeAll = [&] {
        for (;;) {
          absl::StatusOr<FramePtr> r = codec_.decode(in);
          if (!r.ok()) {
            st = r.status();
            return;
          }
          if (*r == nullptr) return;
          Frame& f = **r;
          absl::StrAppend(&log, describe(f), "\n");
          if (!f.headers_complete) {
            absl::Status h = codec_.loadAllHeaders(f);
            absl::StrAppend(&log, "  all: ", h.ok() ? describe(f) : h.ToString(), "\n");
          }
          if (frames != nullptr) kept.push_back(std::move(*r));
        }
      };
      if (pieces.empty()) {
        in.add(input_);
        decodeAll();
      } else {
        size_t at = 0;
        for (size_t n : pieces) {
          in.add(input_.substr(at, n));
          at += n;
          decodeAll();
          if (!st.ok()) break;
        }
      }
      if (st.ok()) {
        absl::StrAppend(&log, "ok left=", in.length());
      } else {
        switch (st.code()) {
        case absl::StatusCode::kInvalidArgument:
        case absl::StatusCode::kResourceExhausted:
        case absl::StatusCode::kDataLoss:
          break;
        default:
          fail(target_, absl::StrCat("unexpected status code: ", st.ToString()), input_);
        }
        // Where it stopped depends on the cut; what went wrong must not.
        absl::StrAppend(&log, st.ToString());
      }
      if (frames != nullptr) {
        for (FramePtr& f : kept) checkFrame(*f);
      }
    }
    if (pool.inUse() != 0) fail(target_, "buffer blocks leaked", input_);
    return log;
  }

private:
  FramePtr decodeOnly(const std::string& bytes, const char* what, bool by_peer = false) {
    const Codec& codec = by_peer ? peer_ : codec_;
    buffer::Buffer in;
    in.add(bytes);
    absl::StatusOr<FramePtr> r = codec.decode(in);
    if (!r.ok() || *r == nullptr || !in.empty()) {
      fail(target_,
           absl::StrCat(what, " does not decode as one frame: ",
                        r.ok() ? (*r == nullptr ? "incomplete" : "bytes left")
                               : r.status().ToString(),
                        "\nbytes: ", absl::BytesToHexString(bytes)),
           input_);
    }
    if (!(*r)->headers_complete) (void)codec.loadAllHeaders(**r);
    return std::move(*r);
  }

  void checkFrame(Frame& f) {
    const std::string raw = f.raw.toString();
    const std::string text = describe(f);
    // Its bytes alone.
    FramePtr again = decodeOnly(raw, "a frame's raw bytes");
    if (describe(*again) != text) {
      fail(target_, absl::StrCat("a frame's raw bytes decode differently:\n", text, "\n",
                                 describe(*again)),
           input_);
    }
    if (codec_.detect(f.raw) != DetectResult::Yes) {
      fail(target_, "detect() refuses a frame decode() took", input_);
    }
    // A new id and back.
    const uint64_t new_id = (f.request_id ^ 0x5a5aa5a5c3c33c3cull) & codec_.maxRequestId();
    buffer::BlockPool small(64);
    {
      buffer::Buffer copy(&small);
      copy.add(raw);
      absl::Status st = codec_.patchRequestId(copy, new_id);
      if (!st.ok()) fail(target_, absl::StrCat("patchRequestId: ", st.ToString()), input_);
      FramePtr patched = decodeOnly(copy.toString(), "a patched frame");
      if (patched->request_id != new_id) fail(target_, "patched id not read back", input_);
      patched->request_id = f.request_id;
      if (describe(*patched) != text) {
        fail(target_, absl::StrCat("patching the id changed more:\n", text, "\n",
                                   describe(*patched)),
             input_);
      }
      st = codec_.patchRequestId(copy, f.request_id);
      if (!st.ok() || copy.toString() != raw) {
        fail(target_, "patching the id back does not restore the bytes", input_);
      }
      if (!codec_.patchRequestId(copy, codec_.maxRequestId()).ok()) {
        fail(target_, "patchRequestId refuses the largest id", input_);
      }
    }
    if (small.inUse() != 0) fail(target_, "buffer blocks leaked by patchRequestId", input_);
    if (!f.isRequest()) return;
    // Answers.
    for (LocalReplyError e : {LocalReplyError::NoRoute, LocalReplyError::NoHealthyUpstream,
                              LocalReplyError::Timeout, LocalReplyError::Overflow,
                              LocalReplyError::CodecError}) {
      buffer::Buffer out;
      codec_.encodeLocalReply(f, e, f.error.ok() ? "fuzz" : f.error.message(), out);
      FramePtr reply = decodeOnly(out.toString(), "a local reply", true);
      if (reply->kind != FrameKind::Response || reply->request_id != f.request_id ||
          codec_.isSuccess(*reply) || !reply->error.ok()) {
        fail(target_, absl::StrCat("bad local reply (", localReplyErrorName(e), "): ",
                                   describe(*reply)),
             input_);
      }
    }
    if (f.kind == FrameKind::HeartbeatRequest) {
      buffer::Buffer out;
      codec_.encodeHeartbeatResponse(f, out);
      FramePtr answer = decodeOnly(out.toString(), "a heartbeat answer", true);
      if (answer->kind != FrameKind::HeartbeatResponse || answer->request_id != f.request_id ||
          !codec_.isSuccess(*answer)) {
        fail(target_, absl::StrCat("bad heartbeat answer: ", describe(*answer)), input_);
      }
    }
  }

  const char* target_;
  const Codec& codec_;
  const Codec& peer_;
  absl::string_view input_;
  uint32_t block_size_;
};

// Runs one fuzz input against `Codec` built with the limits its first byte picks.
template <typename CodecT> void fuzzOne(const char* target, const uint8_t* data, size_t size) {
  if (size < 2) return;
  const uint8_t mode = data[0];
  const uint8_t seed = data[1];
  absl::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  CodecLimits limits;
  switch (mode & 3) {
  case 0: break;
  case 1: limits.max_frame_bytes = 64; break;
  case 2: limits.max_frame_bytes = 300; break;
  case 3: limits.max_frame_bytes = 4096; break;
  }
  const uint32_t block = (mode & 4) != 0 ? 64 : buffer::BlockPool::kDefaultBlockSize;
  CodecT codec(limits);
  CodecT peer;
  Harness h(target, codec, peer, input, block);
  std::vector<FramePtr> frames;
  const std::string whole = h.run({}, &frames);
  const std::string split = h.run(cuts(seed, input.size()), nullptr);
  if (whole != split) {
    fail(target,
         absl::StrCat("decoding depends on how the input is cut (seed ", seed, ")\nwhole:\n",
                      whole, "\nsplit:\n", split),
         input);
  }
  // A stream that starts with a frame is detected as the protocol from its first bytes.
  if (!frames.empty()) {
    for (size_t n = 0; n <= input.size() && n <= 24; n++) {
      buffer::Buffer prefix;
      prefix.add(input.substr(0, n));
      if (codec.detect(prefix) == DetectResult::No) {
        fail(target, absl::StrCat("detect() says No to the first ", n, " bytes of a frame"),
             input);
      }
    }
  }
}

} // namespace fuzz
} // namespace rpc
} // namespace tern
