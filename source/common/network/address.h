#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tern {
namespace network {

// An IPv4 or IPv6 socket address.
class Address {
public:
  Address() = default;
  static absl::StatusOr<Address> fromIpPort(absl::string_view ip, uint32_t port);
  // "1.2.3.4:80" or "[::1]:80".
  static absl::StatusOr<Address> parse(absl::string_view ip_port);
  static Address fromSockaddr(const sockaddr* sa, socklen_t len);

  const sockaddr* sockAddr() const { return &u_.sa; }
  socklen_t sockAddrLen() const { return len_; }
  int family() const { return u_.sa.sa_family; }
  uint32_t port() const;
  std::string ip() const;
  std::string toString() const; // "ip:port", IPv6 in brackets
  bool valid() const { return len_ != 0; }

private:
  // IPv4 or IPv6 only: 28 bytes rather than sockaddr_storage's 128, since every
  // connection holds two of these.
  union {
    sockaddr sa;
    sockaddr_in in4;
    sockaddr_in6 in6;
  } u_{};
  socklen_t len_{0};
};

} // namespace network
} // namespace tern
