#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "source/common/http/header_map.h"

namespace tern {
namespace http {
namespace grpc {

// content-type application/grpc, application/grpc+proto, application/grpc-web...: a gRPC
// client that expects grpc-status.
bool isGrpcRequest(const HeaderMap& request);
// The gRPC status a local HTTP reply becomes (Envoy's mapping: 400 INTERNAL,
// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504
// UNAVAILABLE, anything else UNKNOWN).
int statusFromHttp(int http_status);
// grpc-message: percent-encoded outside printable ASCII, and '%' itself.
std::string encodeMessage(absl::string_view message);
// The grpc-timeout header ("<1-8 digits><H|M|S|m|u|n>"); nullopt when absent or malformed.
std::optional<std::chrono::milliseconds> parseTimeout(const HeaderMap& request);

} // namespace grpc
} // namespace http
} // namespace tern
