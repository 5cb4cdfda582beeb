#include "source/server/io_runtime.h"

#include "absl/strings/str_cat.h"

namespace tern {
namespace server {

WorkerLoopsRuntime::WorkerLoopsRuntime(uint32_t workers, uint32_t block_size) {
  for (uint32_t i = 0; i < workers; i++) {
    loops_.push_back(std::make_unique<event::LoopDispatcher>(absl::StrCat("worker_", i), block_size));
  }
}

WorkerLoopsRuntime::~WorkerLoopsRuntime() { stop(); }

std::vector<event::Dispatcher*> WorkerLoopsRuntime::dispatchers() {
  std::vector<event::Dispatcher*> out;
  for (auto& l : loops_) out.push_back(l.get());
  return out;
}

void WorkerLoopsRuntime::start() {
  for (auto& l : loops_) {
    event::LoopDispatcher* d = l.get();
    threads_.emplace_back([d] { d->run(); });
  }
}

void WorkerLoopsRuntime::stop() {
  for (auto& l : loops_) l->exit();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

} // namespace server
} // namespace tern
