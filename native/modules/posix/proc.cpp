#include "proc.hpp"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace pmm_posix {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
struct FileCloser {
  void operator()(FILE* f) const { fclose(f); }
};

// Fields of /proc/<pid>/stat we need.  The command name (field 2) may hold
// spaces and parentheses, so parsing starts after its last ')'.
bool read_stat(const char* pid, pid_t* pgrp, unsigned long* utime, unsigned long* stime,
               long* threads, long* rss_pages) {
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
  if (got != 22 || state == 'Z') return false;  // a zombie holds no memory and runs nothing
  *pgrp = group;
  *utime = ut;
  *stime = st;
  *threads = nthreads;
  *rss_pages = rss;
  return true;
}

}  // namespace

GroupSample sample_process_group(pid_t pgid) {
  GroupSample sample;
  std::unique_ptr<DIR, DirCloser> proc(opendir("/proc"));
  if (!proc) return sample;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  while (const dirent* entry = readdir(proc.get())) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    pid_t group;
    unsigned long utime, stime;
    long threads, rss;
    if (!read_stat(entry->d_name, &group, &utime, &stime, &threads, &rss) || group != pgid)
      continue;
    sample.user_secs += static_cast<double>(utime) / ticks;
    sample.system_secs += static_cast<double>(stime) / ticks;
    sample.rss_bytes += static_cast<double>(rss) * page;
    sample.processes += 1;
    sample.threads += static_cast<uint32_t>(threads);
  }
  return sample;
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
  return s;
}

double resource_or(const pmm::Resources& resources, const char* name, double fallback) {
  auto it = resources.find(name);
  return it == resources.end() ? fallback : it->second;
}

}  // namespace pmm_posix
