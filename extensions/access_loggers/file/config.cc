// envoy.access_loggers.file: one formatted line per stream, appended to a file.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "source/common/access_log/formatter.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/server/filter_config.h"

namespace tern {
namespace extensions {
namespace file_access_log {

using ProtoConfig = envoy::extensions::access_loggers::file::v3::FileAccessLog;

// Lines are written with one write(2) each on an O_APPEND fd, so lines from different
// shards never interleave and no lock is needed.
class FileAccessLog : public http::AccessLog {
public:
  FileAccessLog(int fd, access_log::Formatter f) : fd_(fd), formatter_(std::move(f)) {}
  ~FileAccessLog() override {
    if (fd_ > 2) close(fd_);
  }
  void log(const http::HeaderMap* req, const http::HeaderMap* resp, const http::StreamInfo& info) override {
    std::string line = formatter_.format(req, resp, info);
    ssize_t rc = write(fd_, line.data(), line.size());
    (void)rc;
  }

private:
  int fd_;
  access_log::Formatter formatter_;
};

class FileAccessLogFactory : public server::AccessLogFactory {
public:
  std::string name() const override { return "envoy.access_loggers.file"; }
  std::string configType() const override { return ProtoConfig::descriptor()->full_name(); }
  absl::StatusOr<http::AccessLogSharedPtr> createAccessLog(const google::protobuf::Any& any,
                                                           const std::string& at,
                                                           server::FactoryContext&) override {
    ProtoConfig proto;
    auto st = config::unpackTo(any, proto, at);
    if (!st.ok()) return st;
    if (proto.path().empty()) return absl::InvalidArgumentError(absl::StrCat(at, ".path: must be set"));
    std::string fmt = access_log::Formatter::defaultFormat();
    if (proto.has_log_format()) {
      const auto& lf = proto.log_format();
      if (lf.has_text_format_source()) {
        fmt = lf.text_format_source().inline_string();
      } else if (lf.has_json_format()) {
        return absl::InvalidArgumentError(absl::StrCat(at, ".log_format.json_format: not supported yet"));
      }
    } else if (!proto.format().empty()) {
      fmt = proto.format();
    }
    auto f = access_log::Formatter::parse(fmt);
    if (!f.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(at, ".log_format: ", f.status().message()));
    }
    int fd;
    if (proto.path() == "/dev/stdout") {
      fd = 1;
    } else if (proto.path() == "/dev/stderr") {
      fd = 2;
    } else {
      fd = open(proto.path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ".path: cannot open ", proto.path(), ": ", strerror(errno)));
      }
    }
    return http::AccessLogSharedPtr(std::make_shared<FileAccessLog>(fd, std::move(*f)));
  }
};

static config::RegisterFactory<FileAccessLogFactory, server::AccessLogFactory> registered;

} // namespace file_access_log
} // namespace extensions
} // namespace tern
