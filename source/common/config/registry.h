#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tern {
namespace config {

inline constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com/";

// "type.googleapis.com/a.b.C" -> "a.b.C"
inline absl::string_view typeNameOf(absl::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == absl::string_view::npos ? type_url : type_url.substr(slash + 1);
}

// Factories of one kind (network filters, clusters, ...), each registered once at static
// initialisation under its config message's full name and a well-known name. A factory
// class `F` needs `name()` and `configType()`.
template <class Factory> class Registry {
public:
  static void add(Factory* f) {
    byType()[f->configType()] = f;
    byName()[f->name()] = f;
  }
  // By the config's full message name (the type URL without its prefix).
  static Factory* getByType(absl::string_view type) {
    auto it = byType().find(std::string(type));
    return it == byType().end() ? nullptr : it->second;
  }
  static Factory* getByName(absl::string_view name) {
    auto it = byName().find(std::string(name));
    return it == byName().end() ? nullptr : it->second;
  }
  static std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& [n, f] : byName()) out.push_back(n);
    return out;
  }

private:
  static std::map<std::string, Factory*>& byType() {
    static auto* m = new std::map<std::string, Factory*>();
    return *m;
  }
  static std::map<std::string, Factory*>& byName() {
    static auto* m = new std::map<std::string, Factory*>();
    return *m;
  }
};

// `static RegisterFactory<TcpProxyConfigFactory, NetworkFilterFactory> registered;`
template <class Impl, class Base> class RegisterFactory {
public:
  RegisterFactory() { Registry<Base>::add(&instance_); }

private:
  Impl instance_;
};

} // namespace config
} // namespace tern
