#include "proc.hpp"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace pmm_posix {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
struct FileCloser {
  void operator()(FILE* f) const { fclose(f); }
};

// Fields of /proc/<pid>/stat we need.
struct Stat {
  pid_t pgrp = 0;
  unsigned long utime = 0, stime = 0, vsize = 0;
  long threads = 0, rss_pages = 0;
};

// The command name (field 2) may hold spaces and parentheses, so parsing
// starts after its last ')'.  False for a zombie (it holds no memory and runs
// nothing) or a process that vanished.
bool read_stat(const char* pid, Stat* out) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%s/stat", pid);
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path, "r"));
  if (!file) return false;
  char buffer[1024];
  size_t n = std::fread(buffer, 1, sizeof buffer - 1, file.get());
  buffer[n] = '\0';
  const char* after = std::strrchr(buffer, ')');
  if (after == nullptr) return false;
  // Fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt
  // majflt cmajflt utime stime cutime cstime priority nice num_threads
  // itrealvalue starttime vsize rss
  char state;
  int ppid, group, session, tty, tpgid;
  unsigned flags;
  unsigned long minflt, cminflt, majflt, cmajflt, ut, st;
  long cutime, cstime, priority, nice, nthreads, itreal;
  unsigned long long starttime;
  unsigned long vsize;
  long rss;
  int got = std::sscanf(after + 1,
                        " %c %d %d %d %d %d %u %lu %lu %lu %lu %lu %lu %ld %ld %ld %ld %ld %ld "
                        "%llu %lu %ld",
                        &state, &ppid, &group, &session, &tty, &tpgid, &flags, &minflt, &cminflt,
                        &majflt, &cmajflt, &ut, &st, &cutime, &cstime, &priority, &nice,
                        &nthreads, &itreal, &starttime, &vsize, &rss);
  if (got != 22 || state == 'Z') return false;
  out->pgrp = group;
  out->utime = ut;
  out->stime = st;
  out->vsize = vsize;
  out->threads = nthreads;
  out->rss_pages = rss;
  return true;
}

// The last scan of /proc: every process group's totals, and when it was taken.
struct Snapshot {
  std::mutex mutex;
  std::unordered_map<pid_t, GroupSample> groups;
  std::chrono::steady_clock::time_point taken;
  bool valid = false;
};

Snapshot& snapshot() {
  static Snapshot instance;
  return instance;
}

void scan(std::unordered_map<pid_t, GroupSample>& groups) {
  groups.clear();
  std::unique_ptr<DIR, DirCloser> proc(opendir("/proc"));
  if (!proc) return;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  while (const dirent* entry = readdir(proc.get())) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    Stat stat;
    if (!read_stat(entry->d_name, &stat)) continue;
    GroupSample& sample = groups[stat.pgrp];
    sample.user_secs += static_cast<double>(stat.utime) / ticks;
    sample.system_secs += static_cast<double>(stat.stime) / ticks;
    sample.rss_bytes += static_cast<double>(stat.rss_pages) * page;
    if (static_cast<double>(stat.vsize) > sample.max_vsize_bytes)
      sample.max_vsize_bytes = static_cast<double>(stat.vsize);
    sample.processes += 1;
    sample.threads += static_cast<uint32_t>(stat.threads);
  }
}

}  // namespace

GroupSample sample_process_group(pid_t pgid) {
  Snapshot& s = snapshot();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto now = std::chrono::steady_clock::now();
  bool fresh = s.valid && now - s.taken < std::chrono::milliseconds(kSnapshotMaxAgeMs);
  if (fresh && s.groups.count(pgid) == 0) {
    // Missing: gone, or started after the scan.  Only a live leader still in
    // its group is worth a rescan.
    char leader[24];
    std::snprintf(leader, sizeof leader, "%d", static_cast<int>(pgid));
    Stat stat;
    fresh = !(read_stat(leader, &stat) && stat.pgrp == pgid);
  }
  if (!fresh) {
    scan(s.groups);
    s.taken = std::chrono::steady_clock::now();
    s.valid = true;
  }
  auto it = s.groups.find(pgid);
  return it == s.groups.end() ? GroupSample{} : it->second;
}

double now_epoch_secs() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

Container& Containers::add(const std::string& id, const pmm::Resources& resources) {
  auto [it, inserted] = containers_.try_emplace(id);
  if (!inserted) throw pmm::Error(PMM_ERR_EXISTS, "container '" + id + "' is already prepared");
  it->second.resources = resources;
  return it->second;
}

Container& Containers::at(const std::string& id) {
  auto it = containers_.find(id);
  if (it == containers_.end()) throw pmm::Error(PMM_ERR_NOT_FOUND, "unknown container '" + id + "'");
  return it->second;
}

void Containers::erase(const std::string& id) {
  if (containers_.erase(id) == 0)
    throw pmm::Error(PMM_ERR_NOT_FOUND, "unknown container '" + id + "'");
}

GroupSample Containers::sample(Container& container) {
  if (container.pid <= 0) return {};
  GroupSample s = sample_process_group(container.pid);
  if (s.rss_bytes > container.peak_rss_bytes) container.peak_rss_bytes = s.rss_bytes;
  if (s.max_vsize_bytes > container.peak_vsize_bytes)
    container.peak_vsize_bytes = s.max_vsize_bytes;
  return s;
}

double resource_or(const pmm::Resources& resources, const char* name, double fallback) {
  auto it = resources.find(name);
  return it == resources.end() ? fallback : it->second;
}

}  // namespace pmm_posix
