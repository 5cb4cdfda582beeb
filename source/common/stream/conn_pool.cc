#include "source/common/stream/conn_pool.h"

namespace tern {
namespace stream {

Cancellable* PendingRequests::push(http::StreamDecoder& decoder, PoolCallbacks& callbacks) {
  auto entry = std::make_unique<Entry>(*this, decoder, callbacks);
  Entry* raw = entry.get();
  queue_.push_back(std::move(entry));
  raw->self = std::prev(queue_.end());
  cluster_.stats().upstream_rq_pending_total.inc();
  cluster_.stats().upstream_rq_pending_active.inc();
  return raw;
}

PendingRequests::Request PendingRequests::pop() {
  std::unique_ptr<Entry> entry = std::move(queue_.front());
  queue_.pop_front();
  cluster_.stats().upstream_rq_pending_active.dec();
  return entry->request;
}

void PendingRequests::failAll(PoolFailureReason reason, const char* details,
                              const upstream::HostSharedPtr& host) {
  std::list<std::unique_ptr<Entry>> failed;
  failed.swap(queue_);
  cluster_.stats().upstream_rq_pending_active.sub(failed.size());
  for (auto& e : failed) e->request.callbacks.onPoolFailure(reason, details, host);
}

void PendingRequests::Entry::cancel() {
  queue.cluster_.stats().upstream_rq_pending_active.dec();
  queue.queue_.erase(self); // destroys this
}

} // namespace stream
} // namespace tern
