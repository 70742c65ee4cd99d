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
  uint32_t processes = 0, threads = 0;
};

// Sum /proc/<pid>/stat over the processes whose process group is `pgid`.
// Processes that vanish while being read are skipped.
GroupSample sample_process_group(pid_t pgid);

// Seconds since the epoch (ResourceStatistics.timestamp).
double now_epoch_secs();

struct Container {
  pid_t pid = 0;                 // 0 until isolate()
  pmm::Resources resources;
  double peak_rss_bytes = 0;     // highest RSS any sample saw
};

// Containers by id; `at` throws PMM_ERR_NOT_FOUND naming the id.
class Containers {
 public:
  Container& add(const std::string& id, const pmm::Resources& resources);
  Container& at(const std::string& id);
  void erase(const std::string& id);
  // A sample of the container's process group (zeros before isolate()),
  // recording its peak RSS.
  GroupSample sample(Container& container);

 private:
  std::map<std::string, Container> containers_;
};

double resource_or(const pmm::Resources& resources, const char* name, double fallback);

}  // namespace pmm_posix

#endif  // PMM_POSIX_PROC_HPP
