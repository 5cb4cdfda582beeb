// Buffer micro-benchmarks: the per-byte and per-call costs of the operations a proxy does
// on every read and write. Sizes run from one small write to many blocks.
//   bazel run -c opt //test/benchmark:buffer_benchmark -- --benchmark_min_time=0.5
#include <sys/uio.h>

#include <cstring>
#include <string>

#include "benchmark/benchmark.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"

namespace tern {
namespace buffer {
namespace {

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {64, 1024, 16384, 65536, 1 << 20}) b->Arg(n);
}

// Copying bytes in and dropping them again (a write path that must copy).
void BM_AddDrain(benchmark::State& state) {
  const size_t n = state.range(0);
  std::string data(n, 'x');
  BlockPool pool;
  Buffer b(&pool);
  for (auto _ : state) {
    b.add(data.data(), n);
    b.drain(n);
  }
  state.SetBytesProcessed(state.iterations() * n);
}
BENCHMARK(BM_AddDrain)->Apply(sizes);

// Handing a whole buffer to another (read buffer -> peer's write buffer): pointer moves.
void BM_MoveWhole(benchmark::State& state) {
  const size_t n = state.range(0);
  std::string data(n, 'x');
  BlockPool pool;
  Buffer src(&pool), dst(&pool);
  src.add(data.data(), n);
  for (auto _ : state) {
    dst.move(src);
    src.move(dst);
  }
  state.SetBytesProcessed(state.iterations() * 2 * n);
}
BENCHMARK(BM_MoveWhole)->Apply(sizes);

// Moving part of a buffer: whole slices by pointer, the boundary slice copied.
void BM_MovePartial(benchmark::State& state) {
  const size_t n = state.range(0);
  std::string data(2 * n + 100, 'x');
  BlockPool pool;
  Buffer src(&pool), dst(&pool);
  for (auto _ : state) {
    src.add(data.data(), data.size());
    dst.move(src, n + 37);
    dst.drain(dst.length());
    src.drain(src.length());
  }
  state.SetBytesProcessed(state.iterations() * (n + 37));
}
BENCHMARK(BM_MovePartial)->Apply(sizes);

// Many small writes into one buffer: tiny slices are coalesced into the tail.
void BM_SmallMovesCoalesce(benchmark::State& state) {
  BlockPool pool;
  Buffer dst(&pool);
  std::string data(64, 'x');
  for (auto _ : state) {
    for (int i = 0; i < 256; i++) {
      Buffer piece(&pool);
      piece.add(data);
      dst.move(piece);
    }
    dst.drain(dst.length());
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_SmallMovesCoalesce);

// The socket read path: reserve room, "read" into it, commit what arrived, consume it.
// (One reservation spans at most kMaxReserve blocks, so the 1 MiB case fills less.)
void BM_ReserveCommit(benchmark::State& state) {
  const size_t n = state.range(0);
  BlockPool pool;
  Buffer b(&pool);
  iovec iov[Buffer::kMaxReserve];
  int64_t bytes = 0;
  for (auto _ : state) {
    size_t k = b.reserve(n, iov, Buffer::kMaxReserve);
    size_t filled = 0;
    for (size_t i = 0; i < k && filled < n; i++) {
      size_t c = std::min(n - filled, iov[i].iov_len);
      std::memset(iov[i].iov_base, 'r', c);
      filled += c;
    }
    b.commit(filled);
    b.drain(b.length());
    bytes += filled;
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_ReserveCommit)->Apply(sizes);

// Reserving 64 KiB and receiving only a little (the common short read).
void BM_ReserveShortCommit(benchmark::State& state) {
  BlockPool pool;
  Buffer b(&pool);
  iovec iov[Buffer::kMaxReserve];
  for (auto _ : state) {
    b.reserve(65536, iov, Buffer::kMaxReserve);
    std::memset(iov[0].iov_base, 'r', 100);
    b.commit(100);
    b.drain(100);
  }
}
BENCHMARK(BM_ReserveShortCommit);

// The socket write path: iovecs over the slices of a multi-block buffer.
void BM_GetReadableSlices(benchmark::State& state) {
  const size_t n = state.range(0);
  BlockPool pool;
  Buffer b(&pool);
  b.add(std::string(n, 'x'));
  iovec iov[64];
  for (auto _ : state) {
    benchmark::DoNotOptimize(b.getReadableSlices(iov, 64));
  }
}
BENCHMARK(BM_GetReadableSlices)->Apply(sizes);

void BM_CopyOut(benchmark::State& state) {
  const size_t n = state.range(0);
  BlockPool pool;
  Buffer b(&pool);
  b.add(std::string(n, 'x'));
  std::string out(n, '\0');
  for (auto _ : state) {
    b.copyOut(0, n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * n);
}
BENCHMARK(BM_CopyOut)->Apply(sizes);

} // namespace
} // namespace buffer
} // namespace tern
