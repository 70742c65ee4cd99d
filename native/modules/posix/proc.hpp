// What both posix isolators read from /proc, and the container table they share.
#ifndef PMM_POSIX_PROC_HPP
#define PMM_POSIX_PROC_HPP

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "pymesos_modules/isolator.hpp"

namespace pmm_posix {

// Totals over every live process of one process group (a task leads its own).
struct GroupSample {
  double user_secs = 0, system_secs = 0;
  double rss_bytes = 0;
  double max_vsize_bytes = 0;  // the largest address space of one process (what RLIMIT_AS bounds)
  uint32_t processes = 0, threads = 0;
};

// Totals of /proc/<pid>/stat over the processes whose process group is
// `pgid` (zombies and processes that vanish while being read are skipped).
//
// Finding a group's members means reading every /proc/<pid>/stat (about
// 10 us each; Linux has no per-group index), so one scan serves every
// container of every instance in this process for kSnapshotMaxAgeMs: the
// agent's once-a-second watch() and usage() calls over N tasks cost one scan,
// not N.  A group missing from the snapshot whose leader is alive (a task
// isolated after the scan) triggers a fresh scan.  Thread-safe.
GroupSample sample_process_group(pid_t pgid);
constexpr int64_t kSnapshotMaxAgeMs = 100;

// Seconds since the epoch (ResourceStatistics.timestamp).
double now_epoch_secs();

struct Container {
  pid_t pid = 0;                  // 0 until isolate()
  pmm::Resources resources;
  double peak_rss_bytes = 0;      // highest group RSS any sample saw
  double peak_vsize_bytes = 0;    // highest address space of one process any sample saw
};

// Containers by id; `at` throws PMM_ERR_NOT_FOUND naming the id.
class Containers {
 public:
  Container& add(const std::string& id, const pmm::Resources& resources);
  Container& at(const std::string& id);
  void erase(const std::string& id);
  // A sample of the container's process group (zeros before isolate()),
  // recording its peaks.
  GroupSample sample(Container& container);

 private:
  std::map<std::string, Container> containers_;
};

double resource_or(const pmm::Resources& resources, const char* name, double fallback);

}  // namespace pmm_posix

#endif  // PMM_POSIX_PROC_HPP
