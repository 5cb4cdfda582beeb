// Registers the dubbo codec under its protocol name, for the RPC proxy's config.
#include "extensions/codecs/dubbo/dubbo_codec.h"
#include "source/common/config/registry.h"

namespace tern {
namespace dubbo {
namespace {

class DubboCodecFactory : public rpc::CodecFactory {
public:
  std::string name() const override { return "dubbo"; }
  rpc::CodecPtr create(const rpc::CodecLimits& limits) const override {
    return std::make_unique<DubboCodec>(limits);
  }
};

config::RegisterFactory<DubboCodecFactory, rpc::CodecFactory> registered;

} // namespace
} // namespace dubbo
} // namespace tern
