// See cgroup.hpp.
#include "cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace pmm_cgroups {
namespace {

constexpr long kCgroup2Magic = 0x63677270;  // CGROUP2_SUPER_MAGIC

std::string errno_text(int err) { return std::strerror(err); }

// One line of /proc/self/mountinfo that is a cgroup file system.
struct MountEntry {
  std::string point;
  bool v2 = false;
  std::set<std::string> options;  // v1: the controllers (among other options)
};

// mountinfo escapes blanks, tabs, newlines and backslashes as \ooo.
std::string unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() &&
        std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
      out += static_cast<char>(std::strtol(text.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<MountEntry> cgroup_mounts() {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<MountEntry> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> parts;
    std::string part;
    while (fields >> part) parts.push_back(part);
    auto dash = std::find(parts.begin(), parts.end(), "-");
    if (parts.size() < 5 || dash == parts.end() || std::distance(dash, parts.end()) < 4) continue;
    const std::string& type = *(dash + 1);
    if (type != "cgroup" && type != "cgroup2") continue;
    MountEntry entry;
    entry.point = unescape(parts[4]);
    entry.v2 = type == "cgroup2";
    std::istringstream options(*(dash + 3));
    std::string option;
    while (std::getline(options, option, ',')) entry.options.insert(option);
    out.push_back(std::move(entry));
  }
  return out;
}

std::set<std::string> v2_controllers(const std::string& mount) {
  std::set<std::string> out;
  std::ifstream in(mount + "/cgroup.controllers");
  std::string name;
  while (in >> name) out.insert(name);
  return out;
}

bool under(const std::string& path, const std::string& folder) {
  if (folder == "/") return true;
  return path == folder || (path.size() > folder.size() && path.compare(0, folder.size(), folder) == 0 &&
                            path[folder.size()] == '/');
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

void check_writable(const std::string& path) {
  if (access(path.c_str(), W_OK) != 0) {
    int err = errno;
    throw pmm::Error(PMM_ERR_UNSUPPORTED,
                     "the cgroup hierarchy " + path + " is not writable (" + errno_text(err) +
                         "): run the agent as root, or give it a writable hierarchy "
                         "(--cgroups_hierarchy)");
  }
}

}  // namespace

std::vector<Mount> locate(const std::string& hierarchy, const std::vector<std::string>& controllers) {
  char resolved[PATH_MAX];
  if (realpath(hierarchy.c_str(), resolved) == nullptr) {
    int err = errno;
    throw pmm::Error(PMM_ERR_UNSUPPORTED,
                     "the cgroup hierarchy " + hierarchy + " cannot be used: " + errno_text(err));
  }
  const std::string base = resolved;
  std::vector<MountEntry> mounts = cgroup_mounts();
  // cgroup v2: the hierarchy itself is a cgroup2 mount holding every controller.
  struct statfs fs {};
  if (statfs(base.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == kCgroup2Magic) {
    std::set<std::string> available = v2_controllers(base);
    std::vector<std::string> missing;
    std::vector<Mount> out;
    for (const auto& controller : controllers) {
      const std::string needed = controller == "cpuacct" ? "cpu" : controller;
      if (!available.count(needed) &&
          std::find(missing.begin(), missing.end(), needed) == missing.end())
        missing.push_back(needed);
      out.push_back({controller, Version::kV2, base});
    }
    if (missing.empty()) {
      check_writable(base);
      return out;
    }
    std::vector<std::string> listed(available.begin(), available.end());
    throw pmm::Error(PMM_ERR_UNSUPPORTED,
                     "the cgroup2 hierarchy " + base + " does not offer the " + join(missing, ", ") +
                         " controller(s) (its cgroup.controllers lists: " +
                         (listed.empty() ? "none" : join(listed, " ")) +
                         "; a controller bound to a cgroup v1 hierarchy is not available in v2)");
  }
  // cgroup v1: one mount per controller at or under the hierarchy.
  std::vector<Mount> out;
  std::vector<std::string> missing, seen;
  for (const auto& controller : controllers) {
    const MountEntry* found = nullptr;
    for (const auto& entry : mounts) {
      if (!entry.v2 && entry.options.count(controller) && under(entry.point, base)) {
        found = &entry;
        break;
      }
    }
    if (found == nullptr) {
      missing.push_back(controller);
      continue;
    }
    out.push_back({controller, Version::kV1, found->point});
  }
  if (!missing.empty()) {
    for (const auto& entry : mounts) {
      if (entry.v2) {
        std::set<std::string> names = v2_controllers(entry.point);
        seen.push_back(entry.point + " (cgroup2: " +
                       (names.empty() ? std::string("no controllers")
                                      : join(std::vector<std::string>(names.begin(), names.end()), " ")) +
                       ")");
      } else {
        seen.push_back(entry.point + " (v1)");
      }
    }
    throw pmm::Error(
        PMM_ERR_UNSUPPORTED,
        "no cgroup hierarchy under " + base + " offers the " + join(missing, ", ") +
            " controller(s): it is no cgroup2 mount listing them and no cgroup v1 mount at or "
            "under it holds them (cgroup mounts on this host: " +
            (seen.empty() ? std::string("none") : join(seen, ", ")) +
            "); mount them, or point --cgroups_hierarchy at the folder that holds them");
  }
  for (const auto& mount : out) check_writable(mount.path);
  return out;
}

std::string unavailable(const std::vector<std::string>& controllers) {
  // Candidates: the usual place, every cgroup2 mount, the folders holding v1 mounts.
  std::vector<std::string> candidates{"/sys/fs/cgroup"};
  for (const auto& entry : cgroup_mounts()) {
    std::string parent = entry.point.substr(0, entry.point.rfind('/'));
    candidates.push_back(entry.v2 ? entry.point : (parent.empty() ? "/" : parent));
  }
  std::string first;
  for (const auto& candidate : candidates) {
    try {
      locate(candidate, controllers);
      return "";
    } catch (const pmm::Error& e) {
      if (first.empty()) first = e.what();
    }
  }
  return first;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    throw pmm::Error(PMM_ERR_GENERIC, "cannot read " + path + ": " + errno_text(err));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int try_write_file(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t written = write(fd, value.data(), value.size());
  int err = written < 0 ? errno : (static_cast<size_t>(written) == value.size() ? 0 : EIO);
  close(fd);
  return err;
}

void write_file(const std::string& path, const std::string& value) {
  int err = try_write_file(path, value);
  if (err != 0)
    throw pmm::Error(PMM_ERR_GENERIC, "cannot write '" + value + "' to " + path + ": " + errno_text(err));
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::map<std::string, double> read_keyed(const std::string& path) {
  std::istringstream in(read_file(path));
  std::map<std::string, double> out;
  std::string key;
  double value = 0;
  while (in >> key >> value) out[key] = value;
  return out;
}

std::optional<double> read_number(const std::string& path) {
  std::string text = read_file(path);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text == "max" || text == "-1") return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) throw pmm::Error(PMM_ERR_GENERIC, path + " holds no number: '" + text + "'");
  // v1's "unlimited" is PAGE_COUNTER_MAX pages in bytes, about 2^63.
  if (value >= 9.0e18) return std::nullopt;
  return value;
}

std::vector<pid_t> read_pids(const std::string& path) {
  std::vector<pid_t> out;
  std::ifstream in(path);
  long pid = 0;
  while (in >> pid) out.push_back(static_cast<pid_t>(pid));
  return out;
}

void make_dirs(const std::string& path) {
  std::string partial;
  std::istringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    partial += "/" + part;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      int err = errno;
      throw pmm::Error(PMM_ERR_GENERIC, "cannot create the cgroup " + partial + ": " + errno_text(err));
    }
  }
}

std::vector<std::string> children(const std::string& path) {
  std::vector<std::string> out;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return out;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (stat((path + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) out.push_back(name);
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

bool destroy(const std::string& path, std::string* why) {
  if (!exists(path)) return true;
  bool gone = true;
  for (const auto& child : children(path)) gone = destroy(path + "/" + child, why) && gone;
  if (!gone) return false;
  // A killed process leaves the cgroup once it has exited: kill again until
  // it is empty (a fork racing the first kill lands in it too), for about 1 s.
  const timespec pause{0, 10 * 1000 * 1000};
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::vector<pid_t> pids = read_pids(path + "/cgroup.procs");
    if (pids.empty() && rmdir(path.c_str()) == 0) return true;
    if (pids.empty() && (errno == ENOENT)) return true;
    int err = errno;
    for (pid_t pid : pids) kill(pid, SIGKILL);
    nanosleep(&pause, nullptr);
    if (attempt == 99) {
      if (why != nullptr)
        *why = "cannot remove the cgroup " + path + ": " +
               (pids.empty() ? errno_text(err) : std::to_string(pids.size()) + " process(es) survive SIGKILL");
      return false;
    }
  }
  return false;
}

std::string clean_root(const std::string& root) {
  std::string out;
  std::istringstream parts(root);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    if (part == "." || part == ".." || part.find('\0') != std::string::npos)
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'root' (--cgroups_root) must not hold '.' or '..', got '" +
                                            root + "'");
    out += (out.empty() ? "" : "/") + part;
  }
  if (out.empty())
    throw pmm::Error(PMM_ERR_INVALID,
                     "parameter 'root' (--cgroups_root) must name a folder below the hierarchy, got '" +
                         root + "'");
  return out;
}

void check_name(const std::string& id) {
  if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
      id.rfind("cgroup.", 0) == 0)
    throw pmm::Error(PMM_ERR_INVALID,
                     "container id '" + id + "' cannot name a cgroup folder ('/', '.', '..' or 'cgroup.*')");
}

}  // namespace pmm_cgroups
