// The built-in posix isolators: `posix/rlimits` (limits memory and cpu time
// with setrlimit and reports a container that exceeds its memory) and
// `posix/usage` (cpu time, RSS, processes and threads from /proc).
#include <sys/wait.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <string>

#include "proc.hpp"

namespace {

constexpr double kMB = 1024.0 * 1024.0;

std::string mb(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", bytes / kMB);
  return text;
}

std::string limitation(const char* reason, const std::string& message, const char* resource,
                       double amount) {
  char value[32];
  std::snprintf(value, sizeof value, "%.17g", amount);
  return std::string("{\"reason\": ") + pmm::json_string(reason) +
         ", \"message\": " + pmm::json_string(message) + ", \"resources\": {" +
         pmm::json_string(resource) + ": " + value + "}}";
}

// Memory: the task's `mem` is enforced twice.  RSS above it (sampled by
// watch(), like a memory cgroup's limit) is a limitation the agent acts on;
// RLIMIT_AS at mem x address_space_factor is a hard backstop, loose because
// runtimes reserve far more address space than they touch.  Cpu time:
// RLIMIT_CPU from `cpu_time_seconds` (0 = none); the kernel sends SIGXCPU at
// the soft limit and SIGKILL one second later.
class PosixRlimits {
 public:
  PosixRlimits(pmm::Host host, const pmm::Parameters& params)
      : host_(host),
        address_space_factor_(params.get_double("address_space_factor", 2.0)),
        cpu_time_seconds_(params.get_double("cpu_time_seconds", 0.0)) {
    if (!(address_space_factor_ == 0.0 || address_space_factor_ >= 1.0))
      throw pmm::Error(PMM_ERR_INVALID,
                       "parameter 'address_space_factor' must be 0 (no RLIMIT_AS) or >= 1, got " +
                           std::to_string(address_space_factor_));
    if (!(cpu_time_seconds_ >= 0.0) || std::isinf(cpu_time_seconds_))
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'cpu_time_seconds' must be >= 0");
  }

  std::string prepare(const pmm::ContainerConfig& config) {
    pmm_posix::Container& c = containers_.add(config.container_id, config.resources);
    std::string limits;
    double mem = pmm_posix::resource_or(c.resources, "mem", 0.0);
    if (mem > 0 && address_space_factor_ > 0) {
      auto bytes = static_cast<unsigned long long>(mem * kMB * address_space_factor_);
      limits += "{\"type\": \"RLMT_AS\", \"soft\": " + std::to_string(bytes) +
                ", \"hard\": " + std::to_string(bytes) + "}";
    }
    if (cpu_time_seconds_ > 0) {
      auto soft = static_cast<unsigned long long>(std::ceil(cpu_time_seconds_));
      if (!limits.empty()) limits += ", ";
      limits += "{\"type\": \"RLMT_CPU\", \"soft\": " + std::to_string(soft) +
                ", \"hard\": " + std::to_string(soft + 1) + "}";
    }
    return "{\"rlimits\": [" + limits + "]}";
  }

  void isolate(const std::string& id, int64_t pid) { containers_.at(id).pid = static_cast<pid_t>(pid); }

  void update(const std::string& id, const pmm::Resources& resources) {
    containers_.at(id).resources = resources;
  }

  void usage(const std::string& id, pmm_resource_statistics& statistics) {
    pmm_posix::Container& c = containers_.at(id);
    double mem = pmm_posix::resource_or(c.resources, "mem", NAN);
    statistics.mem_limit_bytes = mem * kMB;
  }

  std::string watch(const std::string& id, bool exited, int status) {
    pmm_posix::Container& c = containers_.at(id);
    double mem = pmm_posix::resource_or(c.resources, "mem", 0.0);
    if (!exited) {
      double rss = containers_.sample(c).rss_bytes;
      if (mem > 0 && rss > mem * kMB) {
        host_.info("container " + id + " uses " + mb(rss) + " of memory, over its " + mb(mem * kMB));
        return limitation("REASON_CONTAINER_LIMITATION_MEMORY",
                          "Memory limit exceeded: the task used " + mb(rss) + ", its limit is " +
                              mb(mem * kMB),
                          "mem", mem);
      }
      return "";
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
      return limitation("REASON_CONTAINER_LIMITATION",
                        "CPU time limit exceeded: the task ran out of its " +
                            std::to_string(static_cast<long long>(std::ceil(cpu_time_seconds_))) +
                            " s of cpu time (SIGXCPU)",
                        "cpus", pmm_posix::resource_or(c.resources, "cpus", 0.0));
    }
    // A task that dies after its RSS came near the limit most likely hit
    // RLIMIT_AS (allocation failed) or was about to be caught by watch().
    bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (failed && mem > 0 && c.peak_rss_bytes > 0.9 * mem * kMB) {
      return limitation("REASON_CONTAINER_LIMITATION_MEMORY",
                        "Memory limit exceeded: the task failed after its memory reached " +
                            mb(c.peak_rss_bytes) + " of its " + mb(mem * kMB) + " limit",
                        "mem", mem);
    }
    return "";
  }

  void cleanup(const std::string& id) { containers_.erase(id); }

 private:
  pmm::Host host_;
  double address_space_factor_;
  double cpu_time_seconds_;
  pmm_posix::Containers containers_;
};

class PosixUsage {
 public:
  PosixUsage(pmm::Host host, const pmm::Parameters&) : host_(host) {}

  std::string prepare(const pmm::ContainerConfig& config) {
    containers_.add(config.container_id, config.resources);
    return "";
  }
  void isolate(const std::string& id, int64_t pid) { containers_.at(id).pid = static_cast<pid_t>(pid); }
  void update(const std::string& id, const pmm::Resources& resources) {
    containers_.at(id).resources = resources;
  }

  void usage(const std::string& id, pmm_resource_statistics& s) {
    pmm_posix::Container& c = containers_.at(id);
    pmm_posix::GroupSample sample = containers_.sample(c);
    s.timestamp = pmm_posix::now_epoch_secs();
    s.cpus_user_time_secs = sample.user_secs;
    s.cpus_system_time_secs = sample.system_secs;
    s.cpus_limit = pmm_posix::resource_or(c.resources, "cpus", NAN);
    s.mem_rss_bytes = sample.rss_bytes;
    s.mem_limit_bytes = pmm_posix::resource_or(c.resources, "mem", NAN) * kMB;
    s.processes = sample.processes;
    s.threads = sample.threads;
  }

  std::string watch(const std::string& id, bool, int) {
    containers_.at(id);  // an unknown container is still an error
    return "";
  }
  void cleanup(const std::string& id) { containers_.erase(id); }

 private:
  pmm::Host host_;
  pmm_posix::Containers containers_;
};

const pmm_isolator_vtable kRlimitsTable = pmm::isolator_vtable<PosixRlimits>();
const pmm_isolator_vtable kUsageTable = pmm::isolator_vtable<PosixUsage>();

const pmm_module_descriptor kRlimits = pmm::describe<PosixRlimits>(
    PMM_KIND_ISOLATOR, "org_pymesos_PosixRlimits", "0.1.0", "pymesos-modules",
    "pymesos-modules@example.invalid",
    "posix/rlimits: limits a task's memory (RSS watch + RLIMIT_AS) and cpu time (RLIMIT_CPU)",
    &kRlimitsTable);
const pmm_module_descriptor kUsage = pmm::describe<PosixUsage>(
    PMM_KIND_ISOLATOR, "org_pymesos_PosixUsage", "0.1.0", "pymesos-modules",
    "pymesos-modules@example.invalid",
    "posix/usage: cpu time, RSS, processes and threads of a task from /proc", &kUsageTable);

}  // namespace

PMM_EXPORT_MODULES(&kRlimits, &kUsage)
