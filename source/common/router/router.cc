#include "source/common/router/router.h"

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "source/common/http/grpc.h"
#include "source/common/common/logger.h"

namespace tern {
namespace router {

// One attempt: a request on a pooled upstream connection and its response.
class RouterFilter::UpstreamRequest : public http::StreamDecoder,
                                      public http::StreamCallbacks,
                                      public stream::PoolCallbacks {
public:
  TERN_RECYCLED(UpstreamRequest)
  explicit UpstreamRequest(RouterFilter& parent) : parent_(parent) {}
  ~UpstreamRequest() override {
    if (pending_) pending_->cancel();
    if (encoder_ && upstream_paused_) {
      // Reading from the upstream was paused for a slow client when the response ended:
      // the connection goes back to the pool, and must not go back paused.
      encoder_->readDisable(false);
      parent_.cluster_->stats().upstream_flow_control_resumed_reading_total.inc();
    }
    if (encoder_) encoder_->removeCallbacks(*this);
    if (host_) host_->rq_active--;
    // This attempt stopped the downstream reads: it must not leave them stopped.
    if (above_high_) parent_.callbacks_->onDecoderFilterBelowWriteBufferLowWatermark();
  }

  void start(const upstream::HostSharedPtr& host) {
    auto& shard = parent_.config_->cm->shard(parent_.callbacks_->dispatcher());
    http::Protocol protocol = stream::ConnPools::upstreamProtocol(
        *parent_.cluster_, parent_.callbacks_->streamInfo().downstream_protocol);
    auto& pool = stream::ConnPools::forShard(shard).get(*parent_.cluster_, host, protocol);
    pending_ = pool.newStream(*this, *this);
  }

  // Reset from our side (timeout, retry, downstream gone).
  void reset() {
    if (encoder_ && !response_complete_) {
      http::StreamEncoder* e = encoder_;
      e->removeCallbacks(*this);
      encoder_ = nullptr;
      e->resetStream(http::StreamResetReason::LocalReset);
    }
  }

  // stream::PoolCallbacks
  void onPoolReady(http::StreamEncoder& encoder, const upstream::HostSharedPtr& host,
                   bool reused) override {
    pending_ = nullptr;
    encoder_ = &encoder;
    host_ = host;
    reused_ = reused;
    host_->rq_active++;
    encoder.addCallbacks(*this);
    RouterFilter& p = parent_;
    p.callbacks_->streamInfo().upstream_host = host->address_string;
    bool end = p.request_complete_ && (!p.body_ || p.body_->empty()) && !p.request_trailers_;
    encoder.encodeHeaders(*p.request_headers_, end);
    if (encoder_ == nullptr) return; // reset while writing
    if (p.body_ && !p.body_->empty()) {
      // A retry (or a body that arrived before the connection): send what we kept. Keep
      // it only while another attempt could need it.
      buffer::Buffer copy(&p.callbacks_->dispatcher().blockPool());
      if (p.retries_left_ > 0 && !p.body_too_big_for_retry_) {
        copy.addCopy(*p.body_);
      } else {
        copy.move(*p.body_);
      }
      encoder.encodeData(copy, p.request_complete_ && !p.request_trailers_);
    }
    if (encoder_ && p.request_trailers_) encoder.encodeTrailers(*p.request_trailers_);
    if (p.route_->retry_policy.per_try_timeout.count() > 0) {
      per_try_timer_ = p.callbacks_->dispatcher().createTimer([this] { parent_.onPerTryTimeout(); });
      per_try_timer_->enableTimer(p.route_->retry_policy.per_try_timeout);
    }
  }
  void onPoolFailure(stream::PoolFailureReason reason, const char* details,
                     const upstream::HostSharedPtr& host) override {
    pending_ = nullptr;
    host_ = nullptr;
    parent_.callbacks_->streamInfo().upstream_host = host->address_string;
    if (reason == stream::PoolFailureReason::Overflow) {
      parent_.onUpstreamFailure("overflow", "UO", false, false, false);
    } else {
      (void)details;
      parent_.onUpstreamFailure("connection failure", "UF", true, false, false);
    }
  }

  // http::StreamDecoder: the response.
  void decode1xxHeaders(http::HeaderMapPtr h) override {
    parent_.callbacks_->encode1xxHeaders(std::move(h));
  }
  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    got_headers_ = true;
    if (end_stream) response_complete_ = true;
    parent_.onUpstreamHeaders(std::move(h), end_stream);
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    if (end_stream) response_complete_ = true;
    parent_.onUpstreamData(data, end_stream);
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    response_complete_ = true;
    parent_.onUpstreamTrailers(std::move(t));
  }

  // http::StreamCallbacks
  void onResetStream(http::StreamResetReason reason) override {
    encoder_ = nullptr;
    // A reused keep-alive connection closed by the server just before our request got
    // there: nothing was processed, so one retry on a fresh connection is safe.
    // Or the server refused the stream unprocessed (HTTP/2 GOAWAY): also safe, and it may
    // happen again when the server drains connections often.
    bool refused = reason == http::StreamResetReason::RefusedStream;
    bool safe = refused ||
                (reused_ && !got_headers_ && reason == http::StreamResetReason::ConnectionTermination);
    parent_.onUpstreamFailure(http::resetReasonName(reason), "UR", false, true, safe, refused);
  }
  void onAboveWriteBufferHighWatermark() override {
    if (above_high_) return;
    above_high_ = true;
    parent_.callbacks_->onDecoderFilterAboveWriteBufferHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() override {
    if (!above_high_) return;
    above_high_ = false;
    parent_.callbacks_->onDecoderFilterBelowWriteBufferLowWatermark();
  }

  // Pauses or resumes reading the response; returns whether the state changed.
  bool readDisable(bool disable) {
    if (!encoder_ || upstream_paused_ == disable) return false;
    upstream_paused_ = disable;
    encoder_->readDisable(disable);
    return true;
  }
  http::StreamEncoder* encoder() { return encoder_; }
  bool gotHeaders() const { return got_headers_; }

private:
  RouterFilter& parent_;
  bool upstream_paused_{false};
  stream::Cancellable* pending_{nullptr};
  http::StreamEncoder* encoder_{nullptr};
  upstream::HostSharedPtr host_;
  event::TimerPtr per_try_timer_;
  bool reused_{false};
  bool above_high_{false}; // the upstream write buffer is above its high watermark
  bool got_headers_{false};
  bool response_complete_{false};
};

RouterFilter::RouterFilter(RouterConfigSharedPtr config) : config_(std::move(config)) {}

RouterFilter::~RouterFilter() { cleanupUpstream(); }

void RouterFilter::onDestroy() {
  global_timer_.reset();
  retry_timer_.reset();
  cleanupUpstream();
}

void RouterFilter::cleanupUpstream() {
  if (upstream_) {
    upstream_->reset();
    upstream_.reset();
  }
  if (retry_counted_ && cluster_) {
    cluster_->retriesActive()--;
    retry_counted_ = false;
  }
  if (cluster_ && attempts_ > 0) {
    cluster_->stats().upstream_rq_active.dec();
    attempts_ = 0;
  }
}

std::string RouterFilter::redirectLocation(const http::HeaderMap& h) const {
  std::string scheme = route_->redirect_scheme.empty() ? std::string(h.getView(":scheme"))
                                                       : route_->redirect_scheme;
  if (scheme.empty()) scheme = "http";
  std::string host(h.host());
  if (!route_->redirect_host.empty()) {
    size_t colon = host.rfind(':');
    std::string port = colon == std::string::npos ? "" : host.substr(colon);
    host = route_->redirect_host + port;
  }
  if (route_->redirect_port != 0) {
    host = host.substr(0, host.rfind(':')) + ":" + std::to_string(route_->redirect_port);
  }
  std::string path(h.path());
  std::string query;
  size_t q = path.find('?');
  if (q != std::string::npos) {
    query = path.substr(q);
    path = path.substr(0, q);
  }
  if (!route_->redirect_path.empty()) {
    path = route_->redirect_path;
    // A query in path_redirect replaces the request's (Envoy's rule).
    if (path.find('?') != std::string::npos) query.clear();
  } else if (!route_->redirect_prefix.empty() && route_->path_kind == Route::PathKind::Prefix) {
    path = route_->redirect_prefix + path.substr(std::min(path.size(), route_->path_value.size()));
  }
  if (route_->redirect_strip_query) query.clear();
  return absl::StrCat(scheme, "://", host, path, query);
}

http::FilterHeadersStatus RouterFilter::decodeHeaders(http::HeaderMap& headers, bool end_stream) {
  request_headers_ = &headers;
  request_complete_ = end_stream;
  route_ = callbacks_->route();
  if (route_ == nullptr) {
    config_->stats->no_route.inc();
    callbacks_->sendLocalReply(404, "", nullptr, "route_not_found");
    return http::FilterHeadersStatus::StopIteration;
  }
  if (route_->kind == Route::Kind::DirectResponse) {
    config_->stats->rq_direct_response.inc();
    const Route* r = route_;
    callbacks_->sendLocalReply(static_cast<int>(r->direct_status), r->direct_body,
                               [r](http::HeaderMap& h) {
                                 r->applyResponseEdits(h);
                               },
                               "direct_response");
    return http::FilterHeadersStatus::StopIteration;
  }
  if (route_->kind == Route::Kind::Redirect) {
    config_->stats->rq_redirect.inc();
    std::string location = redirectLocation(headers);
    callbacks_->sendLocalReply(static_cast<int>(route_->redirect_code), "",
                               [location](http::HeaderMap& h) { h.set("location", location); },
                               "redirect");
    return http::FilterHeadersStatus::StopIteration;
  }
  // Which cluster.
  absl::string_view name = route_->cluster;
  if (!route_->cluster_header.empty()) {
    name = headers.getView(route_->cluster_header);
  } else if (!route_->weighted_clusters.empty()) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    uint64_t point = rng() % route_->total_weight;
    for (const auto& wc : route_->weighted_clusters) {
      if (point < wc.weight) {
        name = wc.name;
        break;
      }
      point -= wc.weight;
    }
  }
  cluster_ = name.empty() ? nullptr : config_->cm->get(name);
  if (cluster_ == nullptr) {
    config_->stats->no_cluster.inc();
    callbacks_->streamInfo().addFlag("NC");
    callbacks_->sendLocalReply(503, "cluster not found", nullptr, "cluster_not_found");
    return http::FilterHeadersStatus::StopIteration;
  }
  callbacks_->streamInfo().upstream_cluster = cluster_->name();
  // Rewrites, then header edits at route, virtual host and table level (Envoy's order).


  if (route_->has_prefix_rewrite && route_->path_kind == Route::PathKind::Prefix) {
    std::string path(headers.path());
    headers.set("x-envoy-original-path", path);
    headers.set(":path", route_->prefix_rewrite + path.substr(std::min(path.size(), route_->path_value.size())));
  }
  if (!route_->host_rewrite_literal.empty()) headers.set(":authority", route_->host_rewrite_literal);
  route_->applyRequestEdits(headers);

  retries_left_ = route_->retry_policy.enabled() ? route_->retry_policy.num_retries : 0;
  std::chrono::milliseconds timeout = route_->timeout;
  if (route_->grpc_timeout_header_max) {
    // As Envoy: the client's deadline, capped; a gRPC request without one keeps the route's.
    if (auto t = http::grpc::parseTimeout(headers)) {
      timeout = *t;
      if (route_->grpc_timeout_header_max->count() > 0) timeout = std::min(timeout, *route_->grpc_timeout_header_max);
      if (timeout.count() == 0) timeout = std::chrono::milliseconds(1);
    }
  }
  if (timeout.count() > 0) {
    global_timer_ = callbacks_->dispatcher().createTimer([this] { onGlobalTimeout(); });
    global_timer_->enableTimer(timeout);
  }
  cluster_->stats().upstream_rq_active.inc();
  attempts_ = 1;
  startUpstream();
  return http::FilterHeadersStatus::StopIteration;
}

void RouterFilter::startUpstream() {
  auto& shard = config_->cm->shard(callbacks_->dispatcher());
  upstream::HostSharedPtr host = shard.chooseHost(*cluster_, tried_);
  if (!host && !tried_.empty()) host = shard.chooseHost(*cluster_); // every host tried once
  if (!host) {
    callbacks_->streamInfo().addFlag("UH");
    callbacks_->sendLocalReply(503, "no healthy upstream", nullptr, "no_healthy_upstream");
    return;
  }
  tried_.push_back(host.get());
  upstream_start_ = callbacks_->dispatcher().now();
  upstream_ = std::make_unique<UpstreamRequest>(*this);
  upstream_->start(host);
}

http::FilterDataStatus RouterFilter::decodeData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) request_complete_ = true;
  if (!data.empty()) had_body_ = true;
  const bool connected = upstream_ && upstream_->encoder();
  bool kept = false; // a copy of `data` is in body_
  // Keep a copy while a retry could still need it.
  if (retries_left_ > 0 && !body_too_big_for_retry_) {
    if (!body_) body_ = std::make_unique<buffer::Buffer>(&callbacks_->dispatcher().blockPool());
    if (body_->length() + data.length() > callbacks_->bufferLimit()) {
      body_too_big_for_retry_ = true;
      config_->stats->rq_retry_skipped_request_not_complete.inc();
      // Once connected, what body_ holds has been sent: only the retry copy goes. Before
      // that it is the request body itself and still has to be sent.
      if (connected) body_.reset();
    } else {
      body_->addCopy(data);
      kept = true;
    }
  }
  if (connected) {
    upstream_->encoder()->encodeData(data, end_stream);
  } else if (kept) {
    data.clear(); // body_ has it; sent when the connection is ready
  } else {
    // No connection yet and no copy kept: hold the data until the pool is ready.
    if (!body_) body_ = std::make_unique<buffer::Buffer>(&callbacks_->dispatcher().blockPool());
    body_->move(data);
  }
  return http::FilterDataStatus::StopIterationNoBuffer;
}

http::FilterTrailersStatus RouterFilter::decodeTrailers(http::HeaderMap& trailers) {
  request_complete_ = true;
  request_trailers_ = std::make_unique<http::HeaderMap>(trailers);
  if (upstream_ && upstream_->encoder()) upstream_->encoder()->encodeTrailers(trailers);
  return http::FilterTrailersStatus::StopIteration;
}

bool RouterFilter::retryAllowed() {
  if (retries_left_ == 0 || downstream_response_started_) return false;
  if (!request_complete_ || body_too_big_for_retry_) {
    config_->stats->rq_retry_skipped_request_not_complete.inc();
    return false;
  }
  if (!retry_counted_) {
    if (cluster_->retriesActive().load() >= static_cast<int64_t>(cluster_->maxRetries())) {
      cluster_->stats().upstream_rq_retry_overflow.inc();
      return false;
    }
    cluster_->retriesActive()++;
    retry_counted_ = true;
  }
  return true;
}

void RouterFilter::scheduleRetry() {
  cluster_->stats().upstream_rq_retry.inc();
  upstream_.reset();
  // Exponential back-off from 25 ms with full jitter, as Envoy does.
  static thread_local std::mt19937 rng(std::random_device{}());
  uint32_t attempt = route_->retry_policy.num_retries - retries_left_;
  uint32_t cap = std::min<uint32_t>(25u << std::min<uint32_t>(attempt, 4), 250);
  retries_left_--;
  retry_timer_ = callbacks_->dispatcher().createTimer([this] { startUpstream(); });
  retry_timer_->enableTimer(std::chrono::milliseconds(rng() % cap + 1));
}

void RouterFilter::onUpstreamHeaders(http::HeaderMapPtr headers, bool end_stream) {
  int code = headers->statusCode();
  const RetryPolicy& rp = route_->retry_policy;
  bool retriable = (rp.on_5xx && code >= 500) ||
                   (rp.on_gateway_error && (code == 502 || code == 503 || code == 504));
  if (rp.on_retriable_status_codes) {
    for (uint32_t c : rp.retriable_status_codes) retriable |= static_cast<int>(c) == code;
  }
  if (retriable && retryAllowed()) {
    upstream_->reset();
    scheduleRetry();
    return;
  }
  auto& s = cluster_->stats();
  if (code >= 200 && code < 300) s.upstream_rq_2xx.inc();
  else if (code >= 300 && code < 400) s.upstream_rq_3xx.inc();
  else if (code >= 400 && code < 500) s.upstream_rq_4xx.inc();
  else if (code >= 500) s.upstream_rq_5xx.inc();
  route_->applyResponseEdits(*headers);
  downstream_response_started_ = true;
  if (end_stream) {
    global_timer_.reset();
    recordRqTime();
  }
  callbacks_->encodeHeaders(std::move(headers), end_stream);
}

void RouterFilter::recordRqTime() {
  cluster_->rqTime().record(std::chrono::duration<double, std::milli>(
                                callbacks_->dispatcher().now() - upstream_start_)
                                .count());
}

void RouterFilter::onUpstreamData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) {
    global_timer_.reset();
    recordRqTime();
  }
  callbacks_->encodeData(data, end_stream);
}

void RouterFilter::onUpstreamTrailers(http::HeaderMapPtr trailers) {
  global_timer_.reset();
  recordRqTime();
  callbacks_->encodeTrailers(std::move(trailers));
}

void RouterFilter::onUpstreamFailure(const char* reset_reason, const char* flag,
                                     bool connect_failure, bool reset, bool safe_to_retry,
                                     bool refused) {
  if (downstream_response_started_) {
    // Part of the response is out: all we can do is end the downstream stream.
    callbacks_->streamInfo().addFlag("UR");
    callbacks_->resetStream();
    return;
  }
  const RetryPolicy& rp = route_->retry_policy;
  bool body_available = !had_body_ || (retries_left_ > 0 && !body_too_big_for_retry_);
  // Retries of requests the upstream never processed, outside the retry budget: once for
  // the keep-alive race, a few times for refused HTTP/2 streams.
  if (safe_to_retry && safe_retries_ < (refused ? kMaxRefusedRetries : 1) && request_complete_ &&
      body_available) {
    safe_retries_++;
    upstream_.reset();
    tried_.clear();
    startUpstream();
    return;
  }
  bool policy = (connect_failure && (rp.on_connect_failure || rp.on_5xx || rp.on_gateway_error)) ||
                (reset && (rp.on_reset || rp.on_5xx || rp.on_gateway_error));
  if (policy && retryAllowed()) {
    scheduleRetry();
    return;
  }
  callbacks_->streamInfo().addFlag(flag);
  std::string body = absl::StrCat("upstream connect error or disconnect/reset before headers. reset reason: ",
                                  reset_reason);
  upstream_.reset();
  global_timer_.reset();
  callbacks_->sendLocalReply(503, body, nullptr, absl::StrCat("upstream_reset: ", reset_reason));
}

void RouterFilter::onGlobalTimeout() {
  cluster_->stats().upstream_rq_timeout.inc();
  callbacks_->streamInfo().addFlag("UT");
  retry_timer_.reset();
  if (upstream_) {
    upstream_->reset();
    upstream_.reset();
  }
  if (downstream_response_started_) {
    callbacks_->resetStream();
    return;
  }
  callbacks_->sendLocalReply(504, "upstream request timeout", nullptr, "upstream_response_timeout");
}

void RouterFilter::onPerTryTimeout() {
  cluster_->stats().upstream_rq_per_try_timeout.inc();
  if (upstream_ && upstream_->gotHeaders()) return; // the response is already flowing
  if (upstream_) upstream_->reset();
  if (retryAllowed()) {
    scheduleRetry();
    return;
  }
  upstream_.reset();
  global_timer_.reset();
  callbacks_->streamInfo().addFlag("UT");
  callbacks_->sendLocalReply(504, "upstream request timeout", nullptr, "upstream_per_try_timeout");
}

void RouterFilter::onDownstreamAboveWriteBufferHighWatermark() {
  if (upstream_ && upstream_->readDisable(true)) {
    cluster_->stats().upstream_flow_control_paused_reading_total.inc();
  }
}

void RouterFilter::onDownstreamBelowWriteBufferLowWatermark() {
  if (upstream_ && upstream_->readDisable(false)) {
    cluster_->stats().upstream_flow_control_resumed_reading_total.inc();
  }
}

} // namespace router
} // namespace tern
