#include "test/integration/tern_server.h"

#include "absl/strings/str_cat.h"
#include "source/common/config/bootstrap_loader.h"

namespace tern {
namespace test {

std::string ioModelSettings(absl::string_view io_model) {
  return absl::StrCat(R"(
bootstrap_extensions:
- name: tern.settings
  typed_config:
    "@type": type.googleapis.com/tern.bootstrap.v1.Settings
    io_model: )",
                      io_model, "\n");
}

absl::StatusOr<std::unique_ptr<server::Server>> startTern(const std::string& yaml, int concurrency) {
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  absl::Status st = config::parseYamlInto(yaml, bootstrap);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(st.message(), "\n", yaml));
  server::Options opts;
  opts.concurrency = concurrency;
  auto s = server::Server::create(bootstrap, opts);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(s.status().message(), "\n", yaml));
  (*s)->start();
  return s;
}

} // namespace test
} // namespace tern
