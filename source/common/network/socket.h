#pragma once

#include "absl/status/statusor.h"
#include "source/common/network/address.h"

namespace tern {
namespace network {

// A bound, listening, non-blocking TCP socket. With reuse_port several sockets (one per
// shard) share the address and the kernel spreads connections over them.
absl::StatusOr<int> createListenSocket(const Address& addr, int backlog, bool reuse_port);
// A non-blocking TCP socket of `addr`'s family, not yet connected.
absl::StatusOr<int> createClientSocket(const Address& addr);
// The address a socket is bound to (to learn an ephemeral port).
absl::StatusOr<Address> localAddressOf(int fd);

} // namespace network
} // namespace tern
