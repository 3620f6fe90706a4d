#include "common/secret.h"

#include <string>

#include "gtest/gtest.h"

namespace ems {
namespace {

TEST(SameSecretTest, EqualOnlyForTheSameBytes) {
  EXPECT_TRUE(SameSecret("", ""));
  EXPECT_TRUE(SameSecret("0123abcd", "0123abcd"));
  EXPECT_FALSE(SameSecret("0123abcd", "0123abce")) << "last byte";
  EXPECT_FALSE(SameSecret("0123abcd", "1123abcd")) << "first byte";
  EXPECT_FALSE(SameSecret("0123abcd", "0123abc")) << "a prefix";
  EXPECT_FALSE(SameSecret("0123abc", "0123abcd"));
  EXPECT_FALSE(SameSecret("", "x"));
  const std::string with_nul("ab\0cd", 5), other_nul("ab\0ce", 5);
  EXPECT_FALSE(SameSecret(with_nul, other_nul)) << "bytes after a NUL count";
  EXPECT_TRUE(SameSecret(with_nul, std::string("ab\0cd", 5)));
}

}  // namespace
}  // namespace ems
