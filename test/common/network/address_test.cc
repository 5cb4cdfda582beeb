// Address: parsing "ip:port" / "[ipv6]:port", formatting, sockaddr round trips, and the
// inputs that must be refused.
#include "source/common/network/address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <cstring>

#include "gtest/gtest.h"

namespace tern {
namespace network {
namespace {

TEST(AddressTest, ParsesAndFormatsIpv4) {
  auto a = Address::parse("127.0.0.1:8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->valid());
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->ip(), "127.0.0.1");
  EXPECT_EQ(a->port(), 8080u);
  EXPECT_EQ(a->toString(), "127.0.0.1:8080");
  ASSERT_EQ(a->sockAddrLen(), sizeof(sockaddr_in));
  auto* in = reinterpret_cast<const sockaddr_in*>(a->sockAddr());
  EXPECT_EQ(ntohs(in->sin_port), 8080);
  EXPECT_EQ(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
}

TEST(AddressTest, ParsesAndFormatsIpv6InBrackets) {
  auto a = Address::parse("[::1]:443");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(a->ip(), "::1");
  EXPECT_EQ(a->port(), 443u);
  EXPECT_EQ(a->toString(), "[::1]:443");
  EXPECT_EQ(a->sockAddrLen(), sizeof(sockaddr_in6));

  auto b = Address::parse("[2001:db8::a:1]:0");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->toString(), "[2001:db8::a:1]:0");
}

TEST(AddressTest, FromIpPort) {
  auto a = Address::fromIpPort("::1", 80);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->toString(), "[::1]:80");
  auto b = Address::fromIpPort("10.1.2.3", 65535);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->toString(), "10.1.2.3:65535");
  EXPECT_FALSE(Address::fromIpPort("10.1.2.3", 65536).ok());
  EXPECT_FALSE(Address::fromIpPort("example.com", 80).ok());
}

TEST(AddressTest, RejectsBadInput) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000",
                          "127.0.0.1:-1", "localhost:80", "1.2.3:80", "256.0.0.1:80",
                          "[::1]", "[::1]:x", "[:::1]:80", ":80"}) {
    auto a = Address::parse(bad);
    EXPECT_FALSE(a.ok()) << "'" << bad << "' parsed as " << (a.ok() ? a->toString() : "");
    if (!a.ok()) EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(AddressTest, DefaultIsInvalid) {
  Address a;
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(a.port(), 0u);
  EXPECT_EQ(a.ip(), "");
}

TEST(AddressTest, SockaddrRoundTrip) {
  for (const char* s : {"192.168.1.20:5000", "[fe80::1]:9"}) {
    auto a = Address::parse(s);
    ASSERT_TRUE(a.ok());
    Address b = Address::fromSockaddr(a->sockAddr(), a->sockAddrLen());
    EXPECT_TRUE(b.valid());
    EXPECT_EQ(b.toString(), s);
    EXPECT_EQ(b.sockAddrLen(), a->sockAddrLen());
  }
  // A sockaddr_storage as getsockname/accept fill it (len may exceed what we keep).
  sockaddr_storage ss{};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(1234);
  inet_pton(AF_INET6, "2001:db8::2", &in6->sin6_addr);
  Address c = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(ss));
  EXPECT_EQ(c.toString(), "[2001:db8::2]:1234");
  EXPECT_EQ(c.sockAddrLen(), sizeof(sockaddr_in6));
}

TEST(AddressTest, NonIpSockaddrIsInvalid) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/tmp/x");
  Address a = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(un));
  EXPECT_FALSE(a.valid());
}

} // namespace
} // namespace network
} // namespace tern
