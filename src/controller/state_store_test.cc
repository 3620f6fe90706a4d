#include "controller/state_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace ems::controller {
namespace {

TEST(StateStoreTest, ApplyWritesABatchAtomically) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ems_store_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    auto store = StateStore::Open((dir / "s.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put("k", "gone", "x").ok());
    ASSERT_TRUE((*store)
                    ->Apply({{"k", "a", std::string("1")},
                             {"k", "b", std::string("2\0x", 3)},
                             {"k", "gone", std::nullopt}})
                    .ok());
  }
  auto store = StateStore::Open((dir / "s.db").string());
  ASSERT_TRUE(store.ok());
  auto all = (*store)->List("k");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0], std::make_pair(std::string("a"), std::string("1")));
  EXPECT_EQ((*all)[1].second, std::string("2\0x", 3));
  std::filesystem::remove_all(dir);
}

TEST(StateStoreTest, ASecondOpenOfTheSameStateIsRefusedUntilTheFirstCloses) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ems_store_lock_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "s.db").string();
  {
    auto first = StateStore::Open(path);
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_TRUE((*first)->Put("k", "a", "1").ok());
    // Another controller started with the same --state_dir: refused, naming the database,
    // and the first one's state is untouched.
    auto second = StateStore::Open(path);
    ASSERT_FALSE(second.ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
    EXPECT_NE(second.status().message().find(path), std::string::npos) << second.status();
    ASSERT_TRUE((*first)->Put("k", "b", "2").ok());
  }
  auto again = StateStore::Open(path);
  ASSERT_TRUE(again.ok()) << again.status();
  auto all = (*again)->List("k");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 2u);
  std::filesystem::remove_all(dir);
}

// The state holds every project's cdKeys in the clear (CredentialStore): under the common
// umask 022 the database was created 0644, so every user of the host could read them.
TEST(StateStoreTest, OnlyTheOwnerCanReadTheState) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ems_store_mode_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "s.db").string();
  const mode_t old_umask = ::umask(022);
  auto mode = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 0777 : 0;
  };
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put("credential", "p/k", "{\"cdKey\":\"secret\"}").ok());
    EXPECT_EQ(mode(path), 0600u) << std::oct << mode(path);
    ASSERT_TRUE(std::filesystem::exists(path + "-wal"));
    EXPECT_EQ(mode(path + "-wal"), 0600u) << std::oct << mode(path + "-wal");
  }
  // A database an older controller left readable is made private when opened.
  ::chmod(path.c_str(), 0644);
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(mode(path), 0600u) << std::oct << mode(path);
  }
  ::umask(old_umask);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ems::controller
