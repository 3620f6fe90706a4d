#include "controller/state_store.h"

#include <unistd.h>

#include <filesystem>

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

}  // namespace
}  // namespace ems::controller
