#include "source/common/config/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tern {
namespace config {
namespace {

void appendJsonString(std::string& out, const std::string& s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20) {
        absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
      } else {
        out.push_back(c);
      }
    }
  }
  out.push_back('"');
}

bool isPlainLiteral(const std::string& v) {
  if (v == "true" || v == "false" || v == "null") return true;
  double d;
  if (v.empty()) return false;
  // JSON numbers only: no leading '+', no hex, no inf/nan, no leading zeros like 08.
  if (v[0] == '+' || v.find_first_of("xXnN") != std::string::npos) return false;
  if (v.size() > 1 && v[0] == '0' && v[1] != '.') return false;
  if (v.size() > 2 && v[0] == '-' && v[1] == '0' && v[2] != '.') return false;
  return absl::SimpleAtod(v, &d);
}

// YAML reads ".5", "-.5" and "1." as numbers; JSON wants a digit on each side of the point.
std::string jsonNumber(std::string v) {
  size_t lead = v[0] == '-' ? 1 : 0;
  if (lead < v.size() && v[lead] == '.') v.insert(lead, "0");
  size_t dot = v.find('.');
  if (dot != std::string::npos &&
      (dot + 1 == v.size() || !absl::ascii_isdigit(static_cast<unsigned char>(v[dot + 1])))) {
    v.insert(dot + 1, "0");
  }
  return v;
}

absl::Status emit(const YAML::Node& node, std::string& out) {
  switch (node.Type()) {
  case YAML::NodeType::Null:
  case YAML::NodeType::Undefined:
    out += "null";
    return absl::OkStatus();
  case YAML::NodeType::Scalar: {
    const std::string& v = node.Scalar();
    // "!" marks a quoted scalar, "!!str" an explicitly tagged one: both stay strings.
    if (node.Tag() != "!" && node.Tag() != "tag:yaml.org,2002:str" && isPlainLiteral(v)) {
      out += (v == "true" || v == "false" || v == "null") ? v : jsonNumber(v);
    } else {
      appendJsonString(out, v);
    }
    return absl::OkStatus();
  }
  case YAML::NodeType::Sequence: {
    out.push_back('[');
    bool first = true;
    for (const auto& item : node) {
      if (!first) out.push_back(',');
      first = false;
      absl::Status s = emit(item, out);
      if (!s.ok()) return s;
    }
    out.push_back(']');
    return absl::OkStatus();
  }
  case YAML::NodeType::Map: {
    out.push_back('{');
    bool first = true;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", kv.first.Mark().line + 1, ": map keys must be scalars"));
      }
      if (!first) out.push_back(',');
      first = false;
      appendJsonString(out, kv.first.Scalar());
      out.push_back(':');
      absl::Status s = emit(kv.second, out);
      if (!s.ok()) return s;
    }
    out.push_back('}');
    return absl::OkStatus();
  }
  }
  return absl::OkStatus();
}

} // namespace

absl::StatusOr<std::string> yamlToJson(absl::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("YAML syntax error at line ", e.mark.line + 1, ", column ", e.mark.column + 1,
                     ": ", e.msg));
  }
  std::string out;
  absl::Status s = emit(root, out);
  if (!s.ok()) return s;
  return out;
}

} // namespace config
} // namespace tern
