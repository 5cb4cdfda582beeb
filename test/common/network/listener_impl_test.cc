// ListenerImpl on a real loopback listen socket, and a client ConnectionImpl connecting
// to it, for both IO models.
#include "source/common/network/listener_impl.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "source/common/network/connection_impl.h"
#include "source/common/network/socket.h"
#include "test/test_common/dispatcher_harness.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace network {
namespace {

using test::waitFor;

class ListenerImplTest : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    harness_ = test::DispatcherHarness::create(GetParam());
    auto any = Address::parse("127.0.0.1:0");
    ASSERT_TRUE(any.ok());
    auto fd = createListenSocket(*any, 16, false);
    ASSERT_TRUE(fd.ok()) << fd.status();
    auto bound = localAddressOf(*fd);
    ASSERT_TRUE(bound.ok());
    address_ = *bound;
    ASSERT_NE(address_.port(), 0u);
    ASSERT_TRUE(run([&, lfd = *fd] {
      listener_ = std::make_unique<ListenerImpl>(
          harness_->dispatcher(), lfd, [this](int afd, const Address& remote) {
            absl::MutexLock lock(&mu_);
            accepted_.push_back(afd);
            remotes_.push_back(remote);
          });
    }));
  }

  void TearDown() override {
    EXPECT_TRUE(run([this] {
      client_.reset();
      listener_.reset();
    }));
    harness_->stop();
    absl::MutexLock lock(&mu_);
    for (int fd : accepted_) close(fd);
    for (int fd : clients_) close(fd);
  }

  bool run(std::function<void()> fn) { return harness_->runSync(std::move(fn)); }

  size_t acceptedCount() {
    absl::MutexLock lock(&mu_);
    return accepted_.size();
  }

  int connectClient() {
    int fd = test::connectTo(address_.port());
    EXPECT_GE(fd, 0);
    absl::MutexLock lock(&mu_);
    clients_.push_back(fd);
    return fd;
  }

  std::unique_ptr<test::DispatcherHarness> harness_;
  Address address_;
  std::unique_ptr<ListenerImpl> listener_;
  std::unique_ptr<ConnectionImpl> client_;
  absl::Mutex mu_;
  std::vector<int> accepted_;
  std::vector<Address> remotes_;
  std::vector<int> clients_;
};

INSTANTIATE_TEST_SUITE_P(IoModels, ListenerImplTest, testing::Values("worker_loops", "raw_epoll"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

TEST_P(ListenerImplTest, AcceptsEveryConnectionWithItsRemoteAddress) {
  std::set<uint32_t> client_ports;
  for (int i = 0; i < 5; i++) {
    int fd = connectClient();
    auto local = localAddressOf(fd);
    ASSERT_TRUE(local.ok());
    client_ports.insert(local->port());
  }
  ASSERT_TRUE(waitFor([&] { return acceptedCount() == 5; }));
  absl::MutexLock lock(&mu_);
  std::set<uint32_t> remote_ports;
  for (const auto& r : remotes_) {
    EXPECT_EQ(r.ip(), "127.0.0.1");
    remote_ports.insert(r.port());
  }
  EXPECT_EQ(remote_ports, client_ports);
  // Accepted sockets come non-blocking, ready for a connection.
  for (int fd : accepted_) EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
}

// A disabled listener leaves connections in the backlog; enabling it picks them up
// (the kernel will not raise a fresh edge for connections already queued).
TEST_P(ListenerImplTest, DisabledListenerAcceptsOnceEnabled) {
  ASSERT_TRUE(run([&] { listener_->enable(false); }));
  connectClient();
  connectClient();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(run([] {}));
  EXPECT_EQ(acceptedCount(), 0u);
  ASSERT_TRUE(run([&] { listener_->enable(true); }));
  EXPECT_TRUE(waitFor([&] { return acceptedCount() == 2; }));
}

TEST_P(ListenerImplTest, ClientConnectionConnectsAndTalks) {
  struct Events : public ConnectionCallbacks {
    void onEvent(ConnectionEvent e) override {
      if (e == ConnectionEvent::Connected) connected = true;
      if (e == ConnectionEvent::RemoteClose) remote_close = true;
    }
    std::atomic<bool> connected{false}, remote_close{false};
  } events;
  ASSERT_TRUE(run([&] {
    auto fd = createClientSocket(address_);
    ASSERT_TRUE(fd.ok());
    client_ = std::make_unique<ConnectionImpl>(harness_->dispatcher(), *fd, Address(), address_,
                                               std::make_unique<RawBufferSocket>(), false);
    client_->addConnectionCallbacks(events);
    client_->connect(std::chrono::milliseconds(5000));
    // Written before the connect completes: queued, sent once connected.
    buffer::Buffer b;
    b.add("early");
    client_->write(b, false);
  }));
  ASSERT_TRUE(waitFor([&] { return events.connected.load(); }));
  ASSERT_TRUE(waitFor([&] { return acceptedCount() == 1; }));
  int server_fd;
  {
    absl::MutexLock lock(&mu_);
    server_fd = accepted_[0];
  }
  uint32_t local_port = 0;
  ASSERT_TRUE(run([&] { local_port = client_->localAddress().port(); }));
  {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(remotes_[0].port(), local_port) << "local address learnt after connect";
  }
  ASSERT_TRUE(run([&] {
    buffer::Buffer b;
    b.add(" and late");
    client_->write(b, true);
  }));
  EXPECT_EQ(test::readToEof(server_fd), "early and late");
  // The server closes: without half-close the client sees a remote close.
  shutdown(server_fd, SHUT_RDWR);
  EXPECT_TRUE(waitFor([&] { return events.remote_close.load(); }));
  ASSERT_TRUE(run([&] { client_.reset(); }));
}

TEST_P(ListenerImplTest, ConnectToAClosedPortFailsWithAReason) {
  struct Events : public ConnectionCallbacks {
    void onEvent(ConnectionEvent e) override {
      if (e == ConnectionEvent::RemoteClose) closed = true;
      if (e == ConnectionEvent::Connected) connected = true;
    }
    std::atomic<bool> closed{false}, connected{false};
  } events;
  auto nobody = Address::fromIpPort("127.0.0.1", test::freePort());
  ASSERT_TRUE(nobody.ok());
  ASSERT_TRUE(run([&] {
    auto fd = createClientSocket(*nobody);
    ASSERT_TRUE(fd.ok());
    client_ = std::make_unique<ConnectionImpl>(harness_->dispatcher(), *fd, Address(), *nobody,
                                               std::make_unique<RawBufferSocket>(), false);
    client_->addConnectionCallbacks(events);
    client_->connect(std::chrono::milliseconds(5000));
  }));
  ASSERT_TRUE(waitFor([&] { return events.closed.load(); }));
  EXPECT_FALSE(events.connected);
  std::string reason;
  ASSERT_TRUE(run([&] { reason = client_->closeReason(); }));
  EXPECT_EQ(reason, "Connection refused");
}

} // namespace
} // namespace network
} // namespace tern
