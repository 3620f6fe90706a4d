#include "controller/backend/local_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controller/api/json_util.h"
#include "spdlog/spdlog.h"

namespace ems::controller {
namespace fs = std::filesystem;
namespace {

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr char kCdKeyFile[] = "cd_key";  // in each node's directory; --cd_key_file

// Writes via a temporary and rename, so a reader never sees half a file. `mode` (unless
// unknown) is set before the rename, so the file is never readable more widely.
absl::Status WriteFileAtomically(const fs::path& p, const std::string& data,
                                 fs::perms mode = fs::perms::unknown) {
  const fs::path tmp = p.string() + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);  // a leftover of a crash: O_EXCL below makes a fresh one
  // Created with its mode, not chmodded after the write: the cdKey file must never be
  // readable by others, not even between the two.
  const mode_t create_mode =
      mode == fs::perms::unknown ? 0666 : static_cast<mode_t>(mode & fs::perms::mask);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, create_mode);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", tmp.string(), ": ", std::strerror(errno)));
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
    }
    done += static_cast<size_t>(n);
  }
  // The umask may have taken bits off a mode asked for: set exactly that one.
  if (mode != fs::perms::unknown && ::fchmod(fd, create_mode) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot chmod ", tmp.string()));
  }
  ::close(fd);
  fs::rename(tmp, p, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot rename to ", p.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// The last non-empty line of a log, for "why is this node not ready".
std::string LastLine(const fs::path& p) {
  std::string text = ReadFile(p);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const size_t nl = text.rfind('\n');
  std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
  return line.size() > 80 ? line.substr(line.size() - 80) : line;
}

}  // namespace

std::string LocalBackend::NodeDir(const std::string& cluster_id, const std::string& node) const {
  return (fs::path(options_.work_dir) / cluster_id / node).string();
}

int LocalBackend::LivePid(const std::string& dir) {
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(fs::path(dir) / "pid")), &pid) ||
      pid <= 0) {
    return 0;
  }
  int wstatus = 0;
  const pid_t r = waitpid(pid, &wstatus, WNOHANG);
  if (r == pid) return 0;  // our child, and it has exited (now reaped)
  if (r == 0) return pid;  // our child, still running
  if (kill(pid, 0) != 0) return 0;
  // Not our child (started by a previous controller) or still running: make sure the pid was
  // not reused by another process. Nodes run with their directory as working directory.
  std::error_code ec;
  const fs::path cwd = fs::read_symlink(absl::StrCat("/proc/", pid, "/cwd"), ec);
  if (ec || fs::weakly_canonical(cwd, ec) != fs::weakly_canonical(dir, ec)) return 0;
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') return 0;
  return pid;
}

int64_t LocalBackend::NodeHugePages(const Cluster& c) const {
  const int64_t flavor = std::max<int64_t>(1, c.spec.memory.huge_page_flavor);
  const int64_t cap_pages = std::max<int64_t>(1, options_.node_memory_cap_mb / flavor);
  return std::min(c.spec.memory.huge_page_num, cap_pages);
}

std::string LocalBackend::Note(const Cluster& c) {
  const int64_t requested_mb = c.spec.memory.huge_page_num * c.spec.memory.huge_page_flavor;
  const int64_t given_mb = NodeHugePages(c) * c.spec.memory.huge_page_flavor;
  if (given_mb >= requested_mb) return "";
  return absl::StrCat("local backend: each node's arena is capped at ", given_mb,
                      " MB (--local_node_memory_cap_mb) of the requested ", requested_mb, " MB");
}

absl::Status LocalBackend::Spawn(const Cluster& c, const std::string& node,
                                 const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  Json labels = {{"k8s_cluster_id", c.spec.k8s.k8s_cluster_id},
                 {"labels",
                  {{c.spec.k8s.label.key, c.spec.k8s.label.value},
                   {"kubernetes.io/hostname", node},
                   {"ems.io/cluster", c.id}}}};
  if (absl::Status s = WriteFileAtomically(fs::path(dir) / "labels.json", DumpJson(labels));
      !s.ok()) {
    return s;
  }
  std::vector<std::string> args = {options_.node_binary,
                                   "--listen",
                                   options_.host + ":0",
                                   "--huge_page_num",
                                   std::to_string(NodeHugePages(c)),
                                   "--huge_page_flavor",
                                   std::to_string(c.spec.memory.huge_page_flavor),
                                   "--metrics_port",
                                   "0",
                                   "--node_id",
                                   node};
  if (!options_.membership_address.empty()) {
    args.insert(args.end(), {"--controller", options_.membership_address, "--cluster", c.id});
  }
  // The key goes in a file the node re-reads (not in args, which any local user can list), so
  // a credential created while the cluster runs reaches it (RefreshCredential).
  if (absl::Status s = WriteCdKey(c, dir); !s.ok()) return s;
  args.insert(args.end(), {"--cd_key_file", (fs::path(dir) / kCdKeyFile).string()});
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = (fs::path(dir) / "stdout.log").string();
  const std::string err = (fs::path(dir) / "stderr.log").string();
  // A node started again in the same directory must not look ready from its predecessor's
  // LISTENING line before the child truncates the file.
  fs::remove(out, ec);

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. Its own session, so signals to the
    // controller's process group do not reach it; no inherited descriptors (the controller's
    // listening sockets must not outlive it).
    setsid();
    if (chdir(dir.c_str()) != 0) _exit(126);
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int n = open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || n < 0) _exit(126);
    dup2(n, 0);
    dup2(o, 1);
    dup2(e, 2);
    syscall(SYS_close_range, 3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (absl::Status s = WriteFileAtomically(fs::path(dir) / "pid", std::to_string(pid)); !s.ok()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return s;
  }
  spdlog::info("local backend: started {} of cluster {} (pid {}, huge_page_num {} x {} MB){}", node,
               c.id, pid, NodeHugePages(c), c.spec.memory.huge_page_flavor,
               NodeHugePages(c) < c.spec.memory.huge_page_num ? " [capped]" : "");
  return absl::OkStatus();
}

void LocalBackend::Stop(const std::vector<std::string>& dirs) {
  // Every node is told first, then waited for together: stopping n nodes takes one grace
  // period at most, not n, while the backend's lock is held.
  std::vector<std::pair<int, std::string>> live;  // pid, dir
  for (const std::string& dir : dirs) {
    const int pid = LivePid(dir);
    if (pid > 0 && kill(pid, SIGTERM) == 0) live.emplace_back(pid, dir);
  }
  const absl::Time deadline = absl::Now() + options_.stop_grace;
  while (!live.empty() && absl::Now() < deadline) {
    std::erase_if(live, [](const auto& p) {
      return waitpid(p.first, nullptr, WNOHANG) == p.first || kill(p.first, 0) != 0;
    });
    if (!live.empty()) absl::SleepFor(absl::Milliseconds(10));
  }
  for (const auto& [pid, dir] : live) {
    spdlog::warn("local backend: {} ignored SIGTERM for {}; killing", dir,
                 absl::FormatDuration(options_.stop_grace));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  for (const std::string& dir : dirs) {
    std::error_code ec;
    fs::remove(fs::path(dir) / "pid", ec);
  }
}

absl::StatusOr<std::vector<std::string>> LocalBackend::PlanNodes(const Cluster& c) {
  std::vector<std::string> names;
  for (int i = 0; i < c.spec.k8s.node_count; ++i) names.push_back(absl::StrCat("local-", i));
  const std::string note = Note(c);
  if (!note.empty()) spdlog::info("cluster {}: {}", c.id, note);
  return names;
}

absl::StatusOr<std::vector<std::string>> LocalBackend::DiscoverNodes(const Cluster& c) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(options_.work_dir) / c.id, ec)) {
    if (e.is_directory() && LivePid(e.path().string()) > 0) {
      names.push_back(e.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status LocalBackend::Prepare(const Cluster& c) {
  std::error_code ec;
  fs::create_directories(fs::path(options_.work_dir) / c.id, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create node directory: ", ec.message()));
  if (access(options_.node_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("ems-node binary ", options_.node_binary, " is not executable"));
  }
  return absl::OkStatus();
}

absl::Status LocalBackend::WriteCdKey(const Cluster& c, const std::string& dir) {
  const std::string key = options_.cd_key_of ? options_.cd_key_of(c.project_id) : "";
  // The node runs as the controller's user: nobody else needs to read the key.
  return WriteFileAtomically(fs::path(dir) / kCdKeyFile, key,
                             fs::perms::owner_read | fs::perms::owner_write);
}

absl::Status LocalBackend::RefreshCredential(const Cluster& c) {
  auto running = DiscoverNodes(c);
  if (!running.ok()) return running.status();
  absl::MutexLock lock(&mu_);
  for (const std::string& node : *running) {
    if (absl::Status s = WriteCdKey(c, NodeDir(c.id, node)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LocalBackend::StartNodes(const Cluster& c, const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  for (const std::string& node : names) {
    const std::string dir = NodeDir(c.id, node);
    if (LivePid(dir) > 0) continue;
    if (absl::Status s = Spawn(c, node, dir); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LocalBackend::StopNodes(const Cluster& c, const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> dirs;
  for (const std::string& node : names) dirs.push_back(NodeDir(c.id, node));
  Stop(dirs);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeStatus>> LocalBackend::Status(
    const Cluster& c, const std::vector<std::string>& names) {
  std::vector<NodeStatus> out;
  for (const std::string& node : names) {
    const std::string dir = NodeDir(c.id, node);
    NodeStatus st{node};
    if (LivePid(dir) == 0) {
      const std::string why = LastLine(fs::path(dir) / "stderr.log");
      st.detail = why.empty() ? "not running" : absl::StrCat("not running: ", why);
    } else {
      std::istringstream lines(ReadFile(fs::path(dir) / "stdout.log"));
      for (std::string line; std::getline(lines, line);) {
        absl::string_view rest = line;
        if (absl::ConsumePrefix(&rest, "LISTENING ")) {
          st.address = std::string(absl::StripAsciiWhitespace(rest));
          st.ready = true;
          break;
        }
      }
      if (!st.ready) st.detail = "starting";
    }
    out.push_back(std::move(st));
  }
  return out;
}

absl::Status LocalBackend::Release(const Cluster& c) {
  absl::MutexLock lock(&mu_);
  const fs::path cluster_dir = fs::path(options_.work_dir) / c.id;
  std::error_code ec;
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(cluster_dir, ec)) {
    if (e.is_directory()) dirs.push_back(e.path().string());
  }
  Stop(dirs);
  fs::remove_all(cluster_dir, ec);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeLabel>> LocalBackend::ListLabels(const std::string& k8s_id) {
  std::set<std::pair<std::string, std::string>> labels;
  std::error_code ec;
  for (const auto& cluster : fs::directory_iterator(options_.work_dir, ec)) {
    std::error_code ec2;
    for (const auto& node : fs::directory_iterator(cluster.path(), ec2)) {
      if (LivePid(node.path().string()) == 0) continue;
      auto j = ParseJson(ReadFile(node.path() / "labels.json"), "labels.json");
      if (!j.ok() || !j->is_object() || StrOr(*j, "k8s_cluster_id") != k8s_id ||
          !j->contains("labels") || !(*j)["labels"].is_object()) {
        continue;
      }
      for (const auto& [k, v] : (*j)["labels"].items()) {
        if (v.is_string()) labels.emplace(k, v.get<std::string>());
      }
    }
  }
  std::vector<NodeLabel> out;
  for (const auto& [k, v] : labels) out.push_back({k, v});
  return out;
}

void LocalBackend::StopAll() {
  absl::MutexLock lock(&mu_);
  std::error_code ec;
  std::vector<std::string> dirs;
  for (const auto& cluster : fs::directory_iterator(options_.work_dir, ec)) {
    std::error_code ec2;
    for (const auto& node : fs::directory_iterator(cluster.path(), ec2)) {
      dirs.push_back(node.path().string());
    }
  }
  Stop(dirs);
}

}  // namespace ems::controller
