#include "source/common/config/bootstrap_loader.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "source/common/config/registry.h"
#include "source/common/config/yaml_json.h"

namespace tern {
namespace config {

absl::Status parseYamlInto(absl::string_view text, google::protobuf::Message& msg) {
  auto json = yamlToJson(text);
  if (!json.ok()) return json.status();
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(*json, &msg, opts);
  if (!st.ok()) {
    // protobuf says "(a.b[0]) field: reason" or "(a.b[0]): reason"; write both as
    // "a.b[0].field: reason", the way Tern's own checks name fields.
    std::string m(st.message());
    if (!m.empty() && m[0] == '(') {
      size_t close = m.find(')');
      if (close != std::string::npos) {
        std::string path = m.substr(1, close - 1);
        std::string rest = m.substr(close + 1);
        if (absl::StartsWith(rest, ": ")) {
          m = path + rest;
        } else if (absl::StartsWith(rest, " ")) {
          m = (path.empty() ? "" : path + ".") + rest.substr(1);
        }
      }
    }
    return absl::InvalidArgumentError(m);
  }
  return absl::OkStatus();
}

absl::StatusOr<envoy::config::bootstrap::v3::Bootstrap> loadBootstrapFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::stringstream ss;
  ss << in.rdbuf();
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  absl::Status st = parseYamlInto(ss.str(), bootstrap);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", st.message()));
  return bootstrap;
}

absl::Status unpackTo(const google::protobuf::Any& any, google::protobuf::Message& out,
                      absl::string_view field_path) {
  if (typeNameOf(any.type_url()) != out.GetDescriptor()->full_name()) {
    return absl::InvalidArgumentError(absl::StrCat(field_path, ": expected type ",
                                                   out.GetDescriptor()->full_name(), ", got ",
                                                   typeNameOf(any.type_url())));
  }
  if (!any.UnpackTo(&out)) {
    return absl::InvalidArgumentError(absl::StrCat(field_path, ": cannot decode ",
                                                   out.GetDescriptor()->full_name()));
  }
  return absl::OkStatus();
}

} // namespace config
} // namespace tern
