#include "source/common/network/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tern {
namespace network {

absl::StatusOr<Address> Address::fromIpPort(absl::string_view ip, uint32_t port) {
  if (port > 65535) return absl::InvalidArgumentError(absl::StrCat("port ", port, " out of range"));
  Address a;
  std::string s(ip);
  auto* v4 = &a.u_.in4;
  auto* v6 = &a.u_.in6;
  if (inet_pton(AF_INET, s.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IP address"));
}

absl::StatusOr<Address> Address::parse(absl::string_view ip_port) {
  size_t colon = ip_port.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", ip_port, "' has no port"));
  }
  absl::string_view ip = ip_port.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  uint32_t port;
  if (!absl::SimpleAtoi(ip_port.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("'", ip_port, "' has a bad port"));
  }
  return fromIpPort(ip, port);
}

Address Address::fromSockaddr(const sockaddr* sa, socklen_t len) {
  Address a;
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return a; // invalid
  a.len_ = std::min<socklen_t>(len, sizeof(a.u_));
  std::memcpy(&a.u_, sa, a.len_);
  return a;
}

uint32_t Address::port() const {
  if (family() == AF_INET) return ntohs(u_.in4.sin_port);
  if (family() == AF_INET6) return ntohs(u_.in6.sin6_port);
  return 0;
}

std::string Address::ip() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &u_.in4.sin_addr, buf, sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &u_.in6.sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

std::string Address::toString() const {
  if (family() == AF_INET6) return absl::StrCat("[", ip(), "]:", port());
  return absl::StrCat(ip(), ":", port());
}

} // namespace network
} // namespace tern
