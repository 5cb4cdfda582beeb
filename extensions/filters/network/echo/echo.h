#pragma once

#include "source/common/network/connection.h"

namespace tern {
namespace extensions {
namespace echo {

// Writes back whatever it reads (and the FIN after it): a built-in upstream for trying
// Tern out and for tests.
class EchoFilter : public network::ReadFilter {
public:
  // network::ReadFilter
  network::FilterStatus onNewConnection() override {
    callbacks_->connection().enableHalfClose(true);
    return network::FilterStatus::Continue;
  }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    callbacks_->connection().write(data, end_stream);
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) override { callbacks_ = &cb; }

private:
  network::ReadFilterCallbacks* callbacks_{nullptr};
};

} // namespace echo
} // namespace extensions
} // namespace tern
