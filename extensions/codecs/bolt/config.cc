// Registers the bolt codec under its protocol name, for the RPC proxy's config.
#include "extensions/codecs/bolt/bolt_codec.h"
#include "source/common/config/registry.h"

namespace tern {
namespace bolt {
namespace {

class BoltCodecFactory : public rpc::CodecFactory {
public:
  std::string name() const override { return "bolt"; }
  rpc::CodecPtr create(const rpc::CodecLimits& limits) const override {
    return std::make_unique<BoltCodec>(limits);
  }
};

config::RegisterFactory<BoltCodecFactory, rpc::CodecFactory> registered;

} // namespace
} // namespace bolt
} // namespace tern
