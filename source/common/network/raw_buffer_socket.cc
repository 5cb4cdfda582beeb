#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "source/common/network/transport_socket.h"

namespace tern {
namespace network {
namespace {

// readv/writev without glibc's cancellation-point wrappers (Tern never cancels threads):
// the wrappers cost about 180 instructions per proxied request, four calls of each.
inline ssize_t sysReadv(int fd, const iovec* iov, size_t n) {
  return ::syscall(SYS_readv, fd, iov, n);
}
inline ssize_t sysWritev(int fd, const iovec* iov, size_t n) {
  return ::syscall(SYS_writev, fd, iov, n);
}

} // namespace

IoResult RawBufferSocket::doRead(int fd, buffer::Buffer& buf, uint64_t max_bytes,
                                 bool stop_on_short_read) {
  IoResult r;
  constexpr size_t kMaxIov = 8;
  // The first read asks for one block: most readiness reports bring a request or a
  // response of a few hundred bytes, and every block reserved is taken from the pool and
  // given back. A read that fills its room asks for 64 KiB from then on, enough to
  // amortise the syscall.
  size_t chunk = 16384;
  while (r.bytes < max_bytes) {
    iovec iov[kMaxIov];
    size_t want = std::min<uint64_t>(max_bytes - r.bytes, chunk);
    size_t n = buf.reserve(want, iov, kMaxIov);
    ssize_t rc = sysReadv(fd, iov, n);
    if (rc > 0) {
      buf.commit(rc);
      r.bytes += rc;
      size_t offered = 0;
      for (size_t i = 0; i < n; i++) offered += iov[i].iov_len;
      if (stop_on_short_read && static_cast<size_t>(rc) < offered) {
        // The socket is drained: the confirming EAGAIN read is skipped.
        r.again = true;
        break;
      }
      chunk = 65536;
      continue;
    }
    buf.commit(0);
    if (rc == 0) {
      r.end_stream = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.again = true;
      break;
    }
    r.action = PostIoAction::Close;
    r.error = errno;
    break;
  }
  return r;
}

IoResult RawBufferSocket::doWrite(int fd, buffer::Buffer& buf) {
  IoResult r;
  constexpr size_t kMaxIov = 64;
  while (!buf.empty()) {
    iovec iov[kMaxIov];
    size_t n = buf.getReadableSlices(iov, kMaxIov);
    ssize_t rc = sysWritev(fd, iov, n);
    if (rc > 0) {
      buf.drain(rc);
      r.bytes += rc;
      continue;
    }
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      r.again = true;
      break;
    }
    r.action = PostIoAction::Close;
    r.error = errno;
    break;
  }
  return r;
}

} // namespace network
} // namespace tern
