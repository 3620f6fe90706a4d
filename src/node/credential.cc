#include "node/credential.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/metadata.h"
#include "node/admission.h"
#include "spdlog/spdlog.h"

namespace ems::node {

absl::Status Credential::Check(const std::string& node_id, absl::string_view given,
                               absl::string_view where) const {
  absl::MutexLock lock(&mu_);
  return CheckCdKey(node_id, key_, given, where);
}

void Credential::Present(grpc::ClientContext& ctx) const {
  if (std::string key = Get(); !key.empty()) ctx.AddMetadata(kCdKeyHeader, key);
}

std::string Credential::Get() const {
  absl::MutexLock lock(&mu_);
  return key_;
}

void Credential::Set(std::string key) {
  absl::MutexLock lock(&mu_);
  if (key == key_) return;
  key_ = std::move(key);
  generation_.fetch_add(1, std::memory_order_release);
}

absl::StatusOr<std::string> ReadCdKeyFile(const std::string& path) {
  // A key is 32 hex digits; anything this large is the wrong file.
  constexpr size_t kMaxBytes = 4096;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cd_key_file ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::string data(kMaxBytes + 1, '\0');
  size_t size = 0;
  while (size < data.size()) {
    const ssize_t n = ::read(fd, data.data() + size, data.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("--cd_key_file ", path, ": cannot read: ", std::strerror(err)));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);
  if (size > kMaxBytes) {
    return absl::InvalidArgumentError(absl::StrCat("--cd_key_file ", path, ": larger than ",
                                                   kMaxBytes, " bytes; not a credential file"));
  }
  data.resize(size);
  return std::string(absl::StripAsciiWhitespace(data));
}

CredentialFileWatcher::CredentialFileWatcher(std::string path,
                                             std::shared_ptr<Credential> credential,
                                             absl::Duration period)
    : path_(std::move(path)), credential_(std::move(credential)), period_(period) {
  thread_ = std::thread([this] { Run(); });
}

CredentialFileWatcher::~CredentialFileWatcher() {
  stop_.Notify();
  thread_.join();
}

void CredentialFileWatcher::Run() {
  while (!stop_.WaitForNotificationWithTimeout(period_)) {
    auto key = ReadCdKeyFile(path_);
    if (!key.ok()) {
      spdlog::warn("credential: {}; keeping the current key", std::string(key.status().message()));
      continue;
    }
    if (*key == credential_->Get()) continue;
    credential_->Set(*key);
    spdlog::info("credential: {} changed: clients must now present {}", path_,
                 key->empty() ? "no cdKey" : "the new cdKey");
  }
}

}  // namespace ems::node
