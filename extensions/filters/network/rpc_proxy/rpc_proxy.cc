#include "extensions/filters/network/rpc_proxy/rpc_proxy.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "source/common/common/logger.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace rpc_proxy {

namespace {
constexpr event::MonotonicTime kNoDeadline = event::MonotonicTime::max();
// AUTO: bytes to wait for before deciding a connection is not RPC.
constexpr size_t kMaxDetectBytes = 16;

// A stream filter's local reply (an HTTP status) as the RPC error it stands for.
rpc::LocalReplyError errorForStatus(int code) {
  switch (code) {
  case 400: return rpc::LocalReplyError::CodecError;
  case 404: return rpc::LocalReplyError::NoRoute;
  case 408:
  case 504: return rpc::LocalReplyError::Timeout;
  case 429: return rpc::LocalReplyError::Overflow;
  case 503: return rpc::LocalReplyError::NoHealthyUpstream;
  default: return rpc::LocalReplyError::Rejected;
  }
}
} // namespace

// One request from receipt to response. Stream filters see it through the same callbacks
// an HTTP stream offers: its headers are the frame's routing headers, and it has no body
// of its own (the frame's bytes are forwarded as they came).
class RpcProxyFilter::ActiveRequest : public stream::RpcUpstreamRequest,
                                      public http::StreamDecoderFilterCallbacks,
                                      public http::StreamEncoderFilterCallbacks,
                                      public http::FilterChainFactoryCallbacks {
public:
  ActiveRequest(RpcProxyFilter& parent, rpc::FramePtr frame)
      : parent_(parent), request_(std::move(frame)), downstream_id_(request_->request_id),
        two_way_(request_->kind == rpc::FrameKind::Request) {}

  // Runs the decoder filters from where they stopped, then routes and sends.
  void decode() {
    while (decoder_index_ < decoder_filters_.size()) {
      auto& f = decoder_filters_[decoder_index_++];
      if (f->decodeHeaders(request_->headers, true) == http::FilterHeadersStatus::StopIteration) {
        return; // continueDecoding() or sendLocalReply() follows
      }
      if (done_) return;
    }
    routeAndSend();
  }

  void routeAndSend() {
    const rpc::Codec& codec = *parent_.codec_;
    route_ = parent_.config_->routes->route(*request_, codec.routeKeys(*request_));
    if (route_ == nullptr) {
      parent_.stats_.rq_no_route.inc();
      return localReply(rpc::LocalReplyError::NoRoute, "tern: no route for this request");
    }
    cluster_ = &route_->pickCluster(parent_.random());
    retries_left_ = route_->retry_policy.enabled() ? route_->retry_policy.num_retries : 0;
    if (two_way_) {
      std::chrono::milliseconds timeout = routeTimeout();
      if (timeout.count() > 0) {
        parent_.unlink(*this);
        deadline_ = parent_.conn_->dispatcher().now() + timeout;
        parent_.insertByDeadline(*this);
        parent_.armDeadlineTimer();
      }
    }
    sendUpstream(nullptr);
  }

  std::chrono::milliseconds routeTimeout() const {
    if (route_->timeout) return *route_->timeout;
    if (request_->timeout_ms != 0) return std::chrono::milliseconds(request_->timeout_ms);
    return rpc::RouteConfig::kDefaultTimeout;
  }

  void sendUpstream(const upstream::Host* exclude) {
    upstream::Host* const excluded[] = {const_cast<upstream::Host*>(exclude)};
    upstream::HostSharedPtr host = parent_.shard_cm_->chooseHost(
        *cluster_, exclude ? absl::Span<upstream::Host* const>(excluded) : absl::Span<upstream::Host* const>());
    if (!host && exclude) host = parent_.shard_cm_->chooseHost(*cluster_);
    if (!host) {
      parent_.stats_.rq_no_healthy_upstream.inc();
      return localReply(rpc::LocalReplyError::NoHealthyUpstream,
                        "tern: no healthy upstream for this request");
    }
    pool_ = &parent_.pool(*cluster_, host);
    if (retries_left_ > 0 && two_way_) retry_copy_ = request_->raw.toString();
    sent_at_ = parent_.conn_->dispatcher().now();
    if (!two_way_) {
      pool_->send(request_->raw, nullptr);
      return parent_.finish(*this);
    }
    pool_->send(request_->raw, this); // may answer (fail) before it returns
  }

  // stream::RpcUpstreamRequest
  void onUpstreamResponse(rpc::FramePtr response) override {
    retry_copy_.clear();
    const auto elapsed = parent_.conn_->dispatcher().now() - sent_at_;
    cluster_->rqTime().record(std::chrono::duration<double, std::milli>(elapsed).count());
    if (parent_.codec_->isSuccess(*response)) {
      parent_.stats_.rq_response_success.inc();
    } else {
      parent_.stats_.rq_response_error.inc();
    }
    if (response->request_id != downstream_id_) {
      absl::Status st = parent_.codec_->patchRequestId(response->raw, downstream_id_);
      if (!st.ok()) TERN_LOG(Error, "rpc_proxy: %s", st.message());
    }
    response_ = std::move(response);
    encode();
  }

  void encode() {
    while (encoder_index_ < encoder_filters_.size()) {
      auto& f = encoder_filters_[encoder_index_++];
      if (f->encodeHeaders(response_->headers, true) == http::FilterHeadersStatus::StopIteration) {
        return; // continueEncoding() follows
      }
    }
    parent_.write(response_->raw);
    parent_.finish(*this);
  }

  void onUpstreamFailure(stream::RpcPoolFailure reason, const char* details) override {
    const rpc::RetryPolicy& p = route_->retry_policy;
    const bool retriable = (reason == stream::RpcPoolFailure::ConnectionFailure && p.on_connect_failure) ||
                           (reason == stream::RpcPoolFailure::Reset && p.on_reset) ||
                           (reason == stream::RpcPoolFailure::Overflow && p.on_overflow);
    if (retriable && retries_left_ > 0 && !retry_copy_.empty() &&
        cluster_->retriesActive().load() < static_cast<int64_t>(cluster_->maxRetries())) {
      retries_left_--;
      parent_.stats_.rq_retry.inc();
      cluster_->stats().upstream_rq_retry.inc();
      const upstream::Host* last = pool_->host().get();
      pool_ = nullptr;
      request_->raw.add(retry_copy_);
      retry_copy_.clear();
      if (!retrying_) cluster_->retriesActive()++; // held until the request ends
      retrying_ = true;
      sendUpstream(last); // `this` may be gone when it returns
      return;
    }
    rpc::LocalReplyError error = rpc::LocalReplyError::UpstreamReset;
    if (reason == stream::RpcPoolFailure::Overflow) {
      parent_.stats_.rq_overflow.inc();
      error = rpc::LocalReplyError::Overflow;
    } else {
      parent_.stats_.rq_upstream_reset.inc();
    }
    pool_ = nullptr;
    localReply(error, absl::StrCat("tern: ", details));
  }

  void onTimeout() {
    if (pool_) pool_->cancel(*this);
    pool_ = nullptr;
    parent_.stats_.rq_timeout.inc();
    cluster_->stats().upstream_rq_timeout.inc();
    localReply(rpc::LocalReplyError::Timeout, "tern: upstream timeout");
  }

  // Answers the request from here (one-way requests are dropped) and ends it.
  void localReply(rpc::LocalReplyError error, absl::string_view message) {
    if (two_way_) parent_.sendLocalReply(*request_, error, message);
    parent_.finish(*this);
  }

  // Downstream gone or request done: release the upstream side and the filters.
  void release() {
    done_ = true;
    if (retrying_) cluster_->retriesActive()--;
    retrying_ = false;
    if (pool_) pool_->cancel(*this);
    pool_ = nullptr;
    for (auto& f : decoder_filters_) f->onDestroy();
    for (auto& f : encoder_filters_) f->onDestroy();
  }

  // http::FilterChainFactoryCallbacks
  void addStreamDecoderFilter(http::StreamDecoderFilterSharedPtr filter) override {
    filter->setDecoderFilterCallbacks(*this);
    decoder_filters_.push_back(std::move(filter));
  }
  void addStreamEncoderFilter(http::StreamEncoderFilterSharedPtr filter) override {
    filter->setEncoderFilterCallbacks(*this);
    encoder_filters_.push_back(std::move(filter));
  }

  // http::StreamFilterCallbacks
  event::Dispatcher& dispatcher() override { return parent_.conn_->dispatcher(); }
  // HTTP routes do not apply to RPC requests; filters read the headers instead.
  const router::Route* route() override { return nullptr; }
  void clearRouteCache() override {}
  http::StreamInfo& streamInfo() override {
    if (!info_) {
      info_ = std::make_unique<http::StreamInfo>();
      info_->start_time = std::chrono::system_clock::now();
      info_->downstream_remote = parent_.conn_->remoteAddress();
      info_->downstream_local = parent_.conn_->localAddress();
      info_->protocol = std::string(parent_.codec_->name());
    }
    return *info_;
  }
  uint64_t streamId() const override { return downstream_id_; }

  // http::StreamDecoderFilterCallbacks
  void continueDecoding() override {
    if (!done_) decode();
  }
  const buffer::Buffer* decodingBuffer() override { return nullptr; }
  http::HeaderMap* requestHeaders() override { return &request_->headers; }
  void sendLocalReply(int code, absl::string_view body, const std::function<void(http::HeaderMap&)>&,
                      absl::string_view) override {
    if (done_) return;
    parent_.stats_.downstream_rq_rejected.inc();
    localReply(errorForStatus(code), body);
  }
  // The response of an RPC request is the upstream's frame; filters cannot make one up
  // other than by sendLocalReply.
  void encode1xxHeaders(http::HeaderMapPtr) override {}
  void encodeHeaders(http::HeaderMapPtr, bool) override {}
  void encodeData(buffer::Buffer&, bool) override {}
  void encodeTrailers(http::HeaderMapPtr) override {}
  void resetStream() override {
    if (!done_) parent_.finish(*this);
  }
  uint32_t bufferLimit() const override { return parent_.conn_->bufferLimit(); }
  void onDecoderFilterAboveWriteBufferHighWatermark() override {}
  void onDecoderFilterBelowWriteBufferLowWatermark() override {}

  // http::StreamEncoderFilterCallbacks
  void continueEncoding() override {
    if (!done_ && response_) encode();
  }
  const buffer::Buffer* encodingBuffer() override { return nullptr; }

  RpcProxyFilter& parent_;
  rpc::FramePtr request_;
  rpc::FramePtr response_;
  const uint64_t downstream_id_;
  const bool two_way_;
  bool done_{false};
  bool retrying_{false};
  // The request's bytes while a retry may need them: exactly their size, not a pooled
  // block per request in flight.
  std::string retry_copy_;
  const rpc::Route* route_{nullptr};
  upstream::Cluster* cluster_{nullptr};
  stream::RpcConnPool* pool_{nullptr};
  uint32_t retries_left_{0};
  event::MonotonicTime sent_at_{};
  event::MonotonicTime deadline_{kNoDeadline};
  ActiveRequest* prev_{nullptr};
  ActiveRequest* next_{nullptr};
  std::vector<http::StreamDecoderFilterSharedPtr> decoder_filters_;
  std::vector<http::StreamEncoderFilterSharedPtr> encoder_filters_;
  size_t decoder_index_{0};
  size_t encoder_index_{0};
  std::unique_ptr<http::StreamInfo> info_;
};

RpcProxyFilter::RpcProxyFilter(RpcProxyConfigSharedPtr config)
    : config_(std::move(config)), stats_(*config_->stats) {}

RpcProxyFilter::~RpcProxyFilter() {
  // The connection is gone (onEvent ran): nothing is left in flight.
  while (head_ != nullptr) {
    ActiveRequest* r = head_;
    unlink(*r);
    r->release();
    delete r;
  }
}

void RpcProxyFilter::initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) {
  callbacks_ = &callbacks;
  conn_ = &callbacks.connection();
}

network::FilterStatus RpcProxyFilter::onNewConnection() {
  conn_->addConnectionCallbacks(*this);
  shard_cm_ = &config_->cm->shard(conn_->dispatcher());
  rng_ = conn_->id() * 0x9e3779b97f4a7c15ull + 1;
  stats_.downstream_cx_total.inc();
  stats_.downstream_cx_active.inc();
  if (config_->idle_timeout.count() > 0) {
    idle_timer_ = std::make_unique<event::IdleTimer>(
        conn_->dispatcher(), config_->idle_timeout, [this] {
          stats_.downstream_cx_idle_timeout.inc();
          conn_->setCloseReason("idle timeout");
          conn_->close(network::ConnectionCloseType::FlushWrite);
        });
  }
  return network::FilterStatus::Continue;
}

uint64_t RpcProxyFilter::random() {
  // xorshift64*: weighted cluster picks need spread, not secrecy.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545f4914f6cdd1dull;
}

bool RpcProxyFilter::chooseCodec(buffer::Buffer& data) {
  if (config_->codec != nullptr) {
    codec_ = config_->codec;
    return true;
  }
  bool need_more = false;
  for (const rpc::Codec* c : config_->auto_codecs) {
    switch (c->detect(data)) {
    case rpc::DetectResult::Yes:
      codec_ = c;
      return true;
    case rpc::DetectResult::NeedMore:
      need_more = true;
      break;
    case rpc::DetectResult::No:
      break;
    }
  }
  if (need_more && data.length() < kMaxDetectBytes) return false;
  if (config_->http) {
    // HTTP/1.1 or HTTP/2: the connection manager takes over, and this filter passes
    // every byte on to it from now on.
    handed_to_http_ = true;
    stats_.downstream_cx_http.inc();
    idle_timer_.reset();
    config_->http(*conn_);
    return true;
  }
  stats_.downstream_cx_protocol_error.inc();
  TERN_LOG(Debug, "rpc_proxy %s: connection %llu is neither %s", config_->stat_prefix,
           static_cast<unsigned long long>(conn_->id()),
           config_->auto_codecs.size() > 1 ? "bolt nor dubbo" : "of the configured protocol");
  conn_->setCloseReason("unknown protocol");
  conn_->close(network::ConnectionCloseType::NoFlush);
  return false;
}

network::FilterStatus RpcProxyFilter::onData(buffer::Buffer& data, bool end_stream) {
  if (handed_to_http_) return network::FilterStatus::Continue;
  if (codec_ == nullptr) {
    if (!chooseCodec(data)) return network::FilterStatus::StopIteration;
    if (handed_to_http_) return network::FilterStatus::Continue;
  }
  if (idle_timer_) idle_timer_->touch();
  while (!closed_ && !data.empty()) {
    if (config_->bolt_v2_only && data.peek(0) != 0x02) {
      stats_.downstream_cx_protocol_error.inc();
      conn_->setCloseReason("not bolt v2");
      conn_->close(network::ConnectionCloseType::NoFlush);
      break;
    }
    auto decoded = codec_->decode(data);
    if (!decoded.ok()) {
      // The stream cannot be read past this point: there is no request to answer.
      stats_.downstream_cx_protocol_error.inc();
      TERN_LOG(Debug, "rpc_proxy %s: connection %llu: %s", config_->stat_prefix,
               static_cast<unsigned long long>(conn_->id()), decoded.status().message());
      conn_->setCloseReason("rpc protocol error");
      conn_->close(network::ConnectionCloseType::FlushWrite);
      break;
    }
    if (*decoded == nullptr) break;
    onFrame(std::move(*decoded));
  }
  if (end_stream && !closed_) conn_->close(network::ConnectionCloseType::FlushWrite);
  return network::FilterStatus::StopIteration;
}

void RpcProxyFilter::onFrame(rpc::FramePtr frame) {
  switch (frame->kind) {
  case rpc::FrameKind::HeartbeatRequest: {
    stats_.downstream_rq_heartbeat.inc();
    buffer::Buffer out(&conn_->dispatcher().blockPool());
    codec_->encodeHeartbeatResponse(*frame, out);
    write(out);
    return;
  }
  case rpc::FrameKind::Request:
  case rpc::FrameKind::Oneway:
    onRequest(std::move(frame));
    return;
  default:
    // Responses from a client: nothing asked for them.
    return;
  }
}

void RpcProxyFilter::onRequest(rpc::FramePtr frame) {
  stats_.downstream_rq_total.inc();
  const bool two_way = frame->kind == rpc::FrameKind::Request;
  if (!two_way) stats_.downstream_rq_oneway.inc();
  if (frame->error.ok() && !frame->headers_complete && config_->routes->needsAllHeaders()) {
    frame->error = codec_->loadAllHeaders(*frame);
  }
  if (!frame->error.ok()) {
    stats_.downstream_rq_decode_error.inc();
    if (two_way) sendLocalReply(*frame, rpc::LocalReplyError::CodecError, frame->error.message());
    return;
  }
  if (two_way && by_id_.contains(frame->request_id)) {
    stats_.downstream_rq_duplicate_id.inc();
    sendLocalReply(*frame, rpc::LocalReplyError::CodecError,
                   "tern: request id already in flight on this connection");
    return;
  }
  auto* r = new ActiveRequest(*this, std::move(frame));
  active_++;
  stats_.downstream_rq_active.inc();
  if (two_way) by_id_.emplace(r->downstream_id_, r);
  insertByDeadline(*r); // no deadline until routed: at the tail
  for (const auto& factory : config_->filter_factories) factory(*r);
  r->decode();
}

void RpcProxyFilter::sendLocalReply(const rpc::Frame& request, rpc::LocalReplyError error,
                                    absl::string_view message) {
  buffer::Buffer out(&conn_->dispatcher().blockPool());
  codec_->encodeLocalReply(request, error, message, out);
  write(out);
}

void RpcProxyFilter::write(buffer::Buffer& out) {
  if (!closed_) conn_->write(out, false);
}

void RpcProxyFilter::insertByDeadline(ActiveRequest& r) {
  // Requests of one route share a timeout, so a new one almost always goes last.
  ActiveRequest* after = tail_;
  while (after != nullptr && after->deadline_ > r.deadline_) after = after->prev_;
  r.prev_ = after;
  r.next_ = after ? after->next_ : head_;
  if (r.next_) r.next_->prev_ = &r;
  else tail_ = &r;
  if (after) after->next_ = &r;
  else head_ = &r;
}

void RpcProxyFilter::unlink(ActiveRequest& r) {
  if (r.prev_) r.prev_->next_ = r.next_;
  else head_ = r.next_;
  if (r.next_) r.next_->prev_ = r.prev_;
  else tail_ = r.prev_;
  r.prev_ = r.next_ = nullptr;
}

void RpcProxyFilter::armDeadlineTimer() {
  if (head_ == nullptr || head_->deadline_ == kNoDeadline) return;
  if (!deadline_timer_) deadline_timer_ = conn_->dispatcher().createTimer([this] { onDeadlineTimer(); });
  // An armed timer that fires early finds nothing due and re-arms: cheaper than moving it
  // every time the head changes.
  if (deadline_timer_->enabled() && timer_at_ <= head_->deadline_) return;
  const auto now = conn_->dispatcher().now();
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(head_->deadline_ - now) +
              std::chrono::milliseconds(1);
  if (wait.count() < 0) wait = std::chrono::milliseconds(0);
  timer_at_ = head_->deadline_;
  deadline_timer_->enableTimer(wait);
}

void RpcProxyFilter::onDeadlineTimer() {
  const auto now = conn_->dispatcher().now();
  while (head_ != nullptr && head_->deadline_ <= now && !closed_) head_->onTimeout();
  if (!closed_) armDeadlineTimer();
}

void RpcProxyFilter::finish(ActiveRequest& r) {
  r.release();
  unlink(r);
  if (r.two_way_) by_id_.erase(r.downstream_id_);
  active_--;
  stats_.downstream_rq_active.dec();
  delete &r;
  if (draining_) closeIfDrained();
}

stream::RpcConnPool& RpcProxyFilter::pool(upstream::Cluster& cluster,
                                          const upstream::HostSharedPtr& host) {
  using Mode = RpcProxyConfig::PoolMode;
  switch (config_->pool_mode) {
  case Mode::Bound: {
    auto& slot = bound_pools_[host.get()];
    if (!slot) {
      slot = std::make_unique<stream::RpcConnPool>(*shard_cm_, cluster, host, *codec_,
                                                   stream::RpcConnPool::Options{1, 0});
    }
    return *slot;
  }
  case Mode::PingPong:
    return stream::RpcConnPools::forShard(*shard_cm_)
        .get(cluster, host, *codec_, stream::RpcConnPool::Options{0, 1});
  case Mode::Multiplex:
    break;
  }
  return stream::RpcConnPools::forShard(*shard_cm_)
      .get(cluster, host, *codec_, stream::RpcConnPool::Options{config_->connections_per_host, 0});
}

void RpcProxyFilter::onDrain() {
  if (handed_to_http_ || draining_) return;
  draining_ = true;
  if (codec_ != nullptr) {
    buffer::Buffer out(&conn_->dispatcher().blockPool());
    if (codec_->encodeGoAway(out)) {
      stats_.downstream_rq_drain_goaway.inc();
      write(out);
    }
  }
  closeIfDrained();
}

void RpcProxyFilter::closeIfDrained() {
  if (active_ == 0 && !closed_) {
    conn_->setCloseReason("draining");
    conn_->close(network::ConnectionCloseType::FlushWrite);
  }
}

void RpcProxyFilter::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::Connected || closed_) return;
  closed_ = true;
  stats_.downstream_cx_active.dec();
  idle_timer_.reset();
  if (deadline_timer_) deadline_timer_->disableTimer();
  while (head_ != nullptr) {
    ActiveRequest* r = head_;
    unlink(*r);
    r->release();
    active_--;
    stats_.downstream_rq_active.dec();
    delete r;
  }
  by_id_.clear();
  bound_pools_.clear();
}

} // namespace rpc_proxy
} // namespace tern
