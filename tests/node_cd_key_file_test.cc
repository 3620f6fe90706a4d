// ems-node --cd_key_file (how a Kubernetes Secret hands a node its project's cdKey): clients
// without the key are UNAUTHENTICATED, clients with it are served; an empty file requires
// nothing; a bad file or both flags stop the node with an error naming what was wrong.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "client/client.h"
#include "client/local_channel.h"
#include "common/key_proto.h"
#include "gtest/gtest.h"
#include "testing/blocks.h"
#include "testing/local_raw.h"
#include "testing/process.h"

namespace ems {
namespace {

namespace fs = std::filesystem;
using testing::TestKey;
using testing::TestValue;

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

class NodeCdKeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ems_cdkey_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteKeyFile(const std::string& content) {
    const fs::path p = dir_ / "cd_key";
    std::ofstream(p, std::ios::trunc) << content;
    return p.string();
  }

  // Runs ems-node to its exit; returns {exit code, stderr}.
  std::pair<int, std::string> RunToExit(const std::string& args) {
    const std::string cmd = testing::BinPath("ems-node") +
                            " --listen=127.0.0.1:0 --metrics_port=-1 --bulk_port=-1 " +
                            "--huge_page_num=8 " + args + " 2>&1 >/dev/null";
    FILE* out = ::popen(cmd.c_str(), "r");
    EXPECT_NE(out, nullptr);
    if (out == nullptr) return {-1, ""};
    std::string text;
    char buf[512];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), out)) > 0;) text.append(buf, n);
    const int status = ::pclose(out);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
  }

  fs::path dir_;
};

TEST_F(NodeCdKeyFileTest, ClientsNeedTheKeyFromTheFile) {
  // A Secret's file may end with a newline; the key is what precedes it.
  auto node = testing::StartNode(
      {"--huge_page_num=8", "--cd_key_file=" + WriteKeyFile(kKey + std::string("\n"))});
  ASSERT_TRUE(node.ok()) << node.status();
  const std::string address = (*node)->Value("LISTENING");
  const std::vector<uint8_t> value = TestValue(7, 300000);

  auto anonymous = Client::Connect({.address = address, .use_local = false});
  ASSERT_TRUE(anonymous.ok()) << anonymous.status();
  EXPECT_EQ((*anonymous)->Put(TestKey(7), value).code(), absl::StatusCode::kUnauthenticated);
  auto wrong = Client::Connect({.address = address, .cd_key = "0123", .use_local = false});
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  EXPECT_EQ((*wrong)->Put(TestKey(7), value).code(), absl::StatusCode::kUnauthenticated);

  auto keyed = Client::Connect({.address = address, .cd_key = kKey, .use_local = false});
  ASSERT_TRUE(keyed.ok()) << keyed.status();
  ASSERT_TRUE((*keyed)->Put(TestKey(7), value).ok());
  std::vector<uint8_t> out(value.size());
  auto n = (*keyed)->Get(TestKey(7), absl::MakeSpan(out));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, value.size());
  EXPECT_EQ(out, value);
  // Reads need the key too, not only writes.
  EXPECT_EQ((*anonymous)->Get(TestKey(7), absl::MakeSpan(out)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(NodeCdKeyFileTest, AnEmptyFileRequiresNoKey) {
  // The Secret of a project with no credential holds an empty value.
  auto node = testing::StartNode({"--huge_page_num=8", "--cd_key_file=" + WriteKeyFile("")});
  ASSERT_TRUE(node.ok()) << node.status();
  auto client = Client::Connect({.address = (*node)->Value("LISTENING"), .use_local = false});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<uint8_t> value = TestValue(3, 4096);
  ASSERT_TRUE((*client)->Put(TestKey(3), value).ok());
  std::vector<uint8_t> out(value.size());
  ASSERT_TRUE((*client)->Get(TestKey(3), absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, value);
}

// A credential created while the node serves (the local backend rewrites the file, the kubelet
// updates a Secret's) takes effect without a restart, and the stored blocks stay.
TEST_F(NodeCdKeyFileTest, ARewrittenFileTakesEffectWithoutARestart) {
  const std::string file = WriteKeyFile("");
  auto node = testing::StartNode({"--huge_page_num=8", "--cd_key_file=" + file});
  ASSERT_TRUE(node.ok()) << node.status();
  const std::string address = (*node)->Value("LISTENING");
  auto anonymous = Client::Connect({.address = address, .use_local = false});
  auto keyed = Client::Connect({.address = address, .cd_key = kKey, .use_local = false});
  ASSERT_TRUE(anonymous.ok() && keyed.ok());
  const std::vector<uint8_t> value = TestValue(5, 65536);
  ASSERT_TRUE((*anonymous)->Put(TestKey(5), value).ok()) << "no key required yet";

  // Replaced the way a Secret update is: a new file renamed over the old one.
  const fs::path next = dir_ / "cd_key.next";
  std::ofstream(next, std::ios::trunc) << kKey << "\n";
  fs::rename(next, file);
  std::vector<uint8_t> out(value.size());
  bool required = false;
  for (int i = 0; i < 200 && !required; ++i) {  // the node re-reads it every 2 s
    required = (*anonymous)->Get(TestKey(5), absl::MakeSpan(out)).status().code() ==
               absl::StatusCode::kUnauthenticated;
    if (!required) ::usleep(50 * 1000);
  }
  EXPECT_TRUE(required) << "the node never took the new key";
  auto n = (*keyed)->Get(TestKey(5), absl::MakeSpan(out));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(out, value) << "the block stored before the key changed is intact";

  // A file that disappears keeps the key: a gap in a mount must not open the node.
  fs::remove(file);
  ::usleep(2500 * 1000);
  EXPECT_EQ((*anonymous)->Get(TestKey(5), absl::MakeSpan(out)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

// The local socket is a data-plane entry point like gRPC and the bulk channel: its hello hands
// out the whole arena, so a connection that has not presented the key gets nothing, not even a
// lookup.
TEST_F(NodeCdKeyFileTest, TheLocalSocketNeedsTheKeyToo) {
  const std::string socket = (dir_ / "ems.sock").string();
  auto node = testing::StartNode(
      {"--huge_page_num=8", "--cd_key_file=" + WriteKeyFile(kKey), "--local_socket=" + socket});
  ASSERT_TRUE(node.ok()) << node.status();
  auto keyed =
      Client::Connect({.address = (*node)->Value("LISTENING"), .cd_key = kKey, .use_local = false});
  ASSERT_TRUE(keyed.ok()) << keyed.status();
  const std::vector<uint8_t> value = TestValue(11, 8192);
  ASSERT_TRUE((*keyed)->Put(TestKey(11), value).ok());
  const int unauthenticated = static_cast<int>(absl::StatusCode::kUnauthenticated);

  // No hello at all: a read lease on a stored block would hand over its offset.
  testing::RawLocal no_hello(socket);
  ASSERT_TRUE(no_hello.ok());
  v1::LocalRequest read;
  ToProto(TestKey(11), read.mutable_read()->add_keys());
  v1::LocalResponse resp;
  ASSERT_TRUE(no_hello.Call(read, &resp));
  EXPECT_EQ(resp.code(), unauthenticated) << resp.DebugString();
  EXPECT_EQ(resp.grants_size(), 0) << resp.DebugString();

  // A hello without the key, or with another: no arena.
  for (const std::string& presented : {std::string(), std::string("0123")}) {
    testing::RawLocal raw(socket);
    ASSERT_TRUE(raw.ok());
    v1::LocalRequest hello;
    hello.mutable_hello()->set_cd_key(presented);
    std::vector<int> fds;
    ASSERT_TRUE(raw.Call(hello, &resp, &fds));
    for (int fd : fds) ::close(fd);
    EXPECT_EQ(resp.code(), unauthenticated) << "'" << presented << "': " << resp.DebugString();
    EXPECT_TRUE(fds.empty()) << "the arena went to a client presenting '" << presented << "'";
  }

  // With the key, the local path serves.
  auto local = client::LocalChannel::Connect({.socket_path = socket, .cd_key = kKey});
  ASSERT_TRUE(local.ok()) << local.status();
  std::vector<uint8_t> out(value.size());
  auto n = (*local)->Get(TestKey(11), absl::MakeSpan(out));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(out, value);
  EXPECT_EQ(client::LocalChannel::Connect({.socket_path = socket}).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(NodeCdKeyFileTest, AnUnreadableFileStopsTheNodeNamingIt) {
  const std::string missing = (dir_ / "no-such-file").string();
  auto [code, err] = RunToExit("--cd_key_file=" + missing);
  EXPECT_NE(code, 0) << "a missing key file must not mean no credential";
  EXPECT_TRUE(absl::StrContains(err, "--cd_key_file " + missing + ": cannot open")) << err;
  EXPECT_FALSE(absl::StrContains(err, "LISTENING")) << err;

  // A directory opens but cannot be read.
  std::tie(code, err) = RunToExit("--cd_key_file=" + dir_.string());
  EXPECT_NE(code, 0);
  EXPECT_TRUE(absl::StrContains(err, "--cd_key_file " + dir_.string() + ": cannot read")) << err;

  std::tie(code, err) = RunToExit("--cd_key_file=" + WriteKeyFile(std::string(5000, 'k')));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(absl::StrContains(err, "larger than 4096 bytes")) << err;
}

TEST_F(NodeCdKeyFileTest, BothFlagsAreRefused) {
  auto [code, err] =
      RunToExit(std::string("--cd_key=") + kKey + " --cd_key_file=" + WriteKeyFile(kKey));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(absl::StrContains(err, "--cd_key or --cd_key_file, not both")) << err;
}

}  // namespace
}  // namespace ems
