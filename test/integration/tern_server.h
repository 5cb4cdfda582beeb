#pragma once

// Starting Tern in-process for integration tests.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "source/server/server.h"

namespace tern {
namespace test {

// The bootstrap extension choosing an IO model ("WORKER_LOOPS" or "RAW_EPOLL"), to append
// at the end of a bootstrap's YAML.
std::string ioModelSettings(absl::string_view io_model);

// Parses `yaml` (an Envoy bootstrap) and starts a server with `concurrency` workers (-1:
// as the bootstrap's settings say). An error says why, with the YAML.
absl::StatusOr<std::unique_ptr<server::Server>> startTern(const std::string& yaml, int concurrency = 2);

} // namespace test
} // namespace tern
