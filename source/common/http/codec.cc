#include "source/common/http/codec.h"

namespace tern {
namespace http {

const char* resetReasonName(StreamResetReason r) {
  switch (r) {
  case StreamResetReason::ConnectionFailure: return "connection failure";
  case StreamResetReason::ConnectionTermination: return "connection termination";
  case StreamResetReason::LocalReset: return "local reset";
  case StreamResetReason::RemoteReset: return "remote reset";
  case StreamResetReason::Overflow: return "overflow";
  case StreamResetReason::ProtocolError: return "protocol error";
  }
  return "unknown";
}

} // namespace http
} // namespace tern
