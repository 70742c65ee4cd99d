// The built-in posix isolators: `posix/rlimits` (limits memory and cpu time
// with setrlimit and reports a container that exceeds its memory) and
// `posix/usage` (cpu time, RSS, processes and threads from /proc).
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bundled.h"
#include "proc.hpp"

namespace {

using json = nlohmann::json;

constexpr double kMB = 1024.0 * 1024.0;

// A failed task whose peak came this close to a limit is taken to have hit it.
constexpr double kAttributionShare = 0.9;

std::string mb(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", bytes / kMB);
  return text;
}

std::string limitation(const char* reason, const std::string& message, const char* resource,
                       double amount) {
  return json{{"reason", reason}, {"message", message}, {"resources", {{resource, amount}}}}.dump();
}

// Mesos' RLimitInfo.RLimit.Type names.
const char* const kRlimitTypes[] = {
    "RLMT_AS",     "RLMT_CORE",   "RLMT_CPU",    "RLMT_DATA",     "RLMT_FSIZE",  "RLMT_LOCKS",
    "RLMT_MEMLOCK", "RLMT_MSGQUEUE", "RLMT_NICE", "RLMT_NOFILE", "RLMT_NPROC",  "RLMT_RSS",
    "RLMT_RTPRIO", "RLMT_RTTIME", "RLMT_SIGPENDING", "RLMT_STACK"};

// One limit; nullopt = unlimited.
struct Rlimit {
  std::string type;
  std::optional<uint64_t> soft, hard;
};

// The tighter of two limits of one type (the operator's cap and the task's wish).
std::optional<uint64_t> tighter(std::optional<uint64_t> a, std::optional<uint64_t> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// A uint64 of a Mesos JSON document: a number, or a decimal string (the
// protobuf JSON mapping writes 64-bit integers as strings).
uint64_t count_of(const json& value, const std::string& where) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (!text.empty() && text.size() <= 20 &&
        text.find_first_not_of("0123456789") == std::string::npos) {
      try {
        return std::stoull(text);
      } catch (const std::out_of_range&) {
      }
    }
  }
  throw pmm::Error(PMM_ERR_INVALID, where + " must be a count >= 0, got " + value.dump());
}

// The task's own limits, as Mesos' posix/rlimits isolator takes them:
// TaskInfo.container.rlimit_info.rlimits, each {type, soft, hard} with soft
// and hard both set or both unset (unlimited).
std::vector<Rlimit> task_rlimits(const std::string& task_json) {
  if (task_json.empty()) return {};
  json task = json::parse(task_json, nullptr, /*allow_exceptions=*/false);
  if (task.is_discarded() || !task.is_object())
    throw pmm::Error(PMM_ERR_INVALID, "the task (TaskInfo) is not a JSON object");
  const json* node = &task;
  for (const char* key : {"container", "rlimit_info", "rlimits"}) {
    auto it = node->find(key);
    if (it == node->end() || it->is_null()) return {};
    node = &*it;
  }
  const std::string base = "task container.rlimit_info.rlimits";
  if (!node->is_array()) throw pmm::Error(PMM_ERR_INVALID, base + " must be a list");
  std::vector<Rlimit> out;
  for (size_t i = 0; i < node->size(); ++i) {
    const json& item = (*node)[i];
    const std::string where = base + "[" + std::to_string(i) + "]";
    if (!item.is_object()) throw pmm::Error(PMM_ERR_INVALID, where + " must be an object");
    auto type = item.find("type");
    if (type == item.end() || !type->is_string() ||
        std::find(std::begin(kRlimitTypes), std::end(kRlimitTypes),
                  type->get_ref<const std::string&>()) == std::end(kRlimitTypes))
      throw pmm::Error(PMM_ERR_INVALID,
                       where + ".type must be a Mesos RLimitInfo type such as RLMT_NOFILE, got " +
                           (type == item.end() ? std::string("nothing") : type->dump()));
    Rlimit limit{type->get<std::string>(), std::nullopt, std::nullopt};
    for (const Rlimit& seen : out)
      if (seen.type == limit.type)
        throw pmm::Error(PMM_ERR_INVALID, where + ": " + limit.type + " is given twice");
    bool has_soft = item.contains("soft"), has_hard = item.contains("hard");
    if (has_soft != has_hard)
      throw pmm::Error(PMM_ERR_INVALID,
                       where + " (" + limit.type + "): set both soft and hard, or neither (unlimited)");
    if (has_soft) {
      limit.soft = count_of(item["soft"], where + ".soft");
      limit.hard = count_of(item["hard"], where + ".hard");
      if (*limit.soft > *limit.hard)
        throw pmm::Error(PMM_ERR_INVALID, where + " (" + limit.type + "): soft " +
                                              std::to_string(*limit.soft) + " is above hard " +
                                              std::to_string(*limit.hard));
    }
    out.push_back(std::move(limit));
  }
  return out;
}

// Per-container state of posix/rlimits beyond the shared table.
struct Limits {
  std::optional<uint64_t> address_space;  // RLIMIT_AS soft, bytes
  std::optional<uint64_t> cpu_seconds;    // RLIMIT_CPU soft
};

// Memory: the task's `mem` is enforced twice.  RSS above it (sampled by
// watch(), like a memory cgroup's limit) is a limitation the agent acts on;
// RLIMIT_AS at mem x address_space_factor + address_space_headroom_mb is a
// hard backstop, loose because runtimes reserve far more address space than
// they touch (a factor for heaps sized from the limit, a headroom for fixed
// reservations such as thread stacks and malloc arenas).  Cpu time:
// RLIMIT_CPU from `cpu_time_seconds` (0 = none); the kernel sends SIGXCPU at
// the soft limit and SIGKILL one second later.  The task may ask for its own
// limits (container.rlimit_info, as in Mesos); for RLMT_AS and RLMT_CPU the
// tighter of the task's and the operator's wins, so a task cannot escape the
// agent's policy.
class PosixRlimits {
 public:
  PosixRlimits(pmm::Host host, const pmm::Parameters& params)
      : host_(host),
        address_space_factor_(params.get_double("address_space_factor", 2.0)),
        address_space_headroom_mb_(params.get_double("address_space_headroom_mb", 0.0)),
        cpu_time_seconds_(params.get_double("cpu_time_seconds", 0.0)) {
    if (!(address_space_factor_ == 0.0 || address_space_factor_ >= 1.0) ||
        std::isinf(address_space_factor_))
      throw pmm::Error(PMM_ERR_INVALID,
                       "parameter 'address_space_factor' must be 0 (no RLIMIT_AS) or >= 1, got " +
                           std::to_string(address_space_factor_));
    if (!(address_space_headroom_mb_ >= 0.0) || std::isinf(address_space_headroom_mb_))
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'address_space_headroom_mb' must be >= 0");
    if (!(cpu_time_seconds_ >= 0.0) || std::isinf(cpu_time_seconds_))
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'cpu_time_seconds' must be >= 0");
  }

  std::string prepare(const pmm::ContainerConfig& config) {
    // Everything is checked before the container is recorded: a bad task changes nothing.
    std::vector<Rlimit> limits;
    double mem = pmm_posix::resource_or(config.resources, "mem", 0.0);
    if (mem > 0 && address_space_factor_ > 0) {
      auto bytes = static_cast<uint64_t>(mem * kMB * address_space_factor_ +
                                         address_space_headroom_mb_ * kMB);
      limits.push_back({"RLMT_AS", bytes, bytes});
    }
    if (cpu_time_seconds_ > 0) {
      auto soft = static_cast<uint64_t>(std::ceil(cpu_time_seconds_));
      limits.push_back({"RLMT_CPU", soft, soft + 1});
    }
    for (Rlimit& wanted : task_rlimits(config.task_json)) {
      auto ours = std::find_if(limits.begin(), limits.end(),
                               [&](const Rlimit& l) { return l.type == wanted.type; });
      if (ours == limits.end()) {
        limits.push_back(std::move(wanted));
        continue;
      }
      ours->hard = tighter(ours->hard, wanted.hard);
      ours->soft = tighter(tighter(ours->soft, wanted.soft), ours->hard);
    }
    Limits chosen;
    json rlimits = json::array();
    for (const Rlimit& l : limits) {
      json item{{"type", l.type}};
      if (l.soft) item["soft"] = *l.soft;
      if (l.hard) item["hard"] = *l.hard;
      rlimits.push_back(std::move(item));
      if (l.type == "RLMT_AS") chosen.address_space = l.soft;
      if (l.type == "RLMT_CPU") chosen.cpu_seconds = l.soft;
    }
    containers_.add(config.container_id, config.resources);
    limits_[config.container_id] = chosen;
    return json{{"rlimits", std::move(rlimits)}}.dump();
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
    const Limits& limits = limits_.at(id);
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
      std::string limit = limits.cpu_seconds ? std::to_string(*limits.cpu_seconds) + " s" : "limit";
      return limitation("REASON_CONTAINER_LIMITATION",
                        "CPU time limit exceeded: the task ran out of its " + limit +
                            " of cpu time (SIGXCPU)",
                        "cpus", pmm_posix::resource_or(c.resources, "cpus", 0.0));
    }
    // A failed allocation at RLIMIT_AS leaves no trace in the wait status (a
    // runtime exits with an error, C++ aborts, C may crash), so a failure is
    // attributed to memory when the samples saw the task come near a limit.
    // SIGTERM and SIGKILL deaths are kills (the agent's, or the kernel's OOM
    // killer), never RLIMIT_AS, so they are left alone.
    bool killed = WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM);
    bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !killed;
    if (failed && mem > 0 && c.peak_rss_bytes > kAttributionShare * mem * kMB) {
      return limitation("REASON_CONTAINER_LIMITATION_MEMORY",
                        "Memory limit exceeded: the task failed after its memory reached " +
                            mb(c.peak_rss_bytes) + " of its " + mb(mem * kMB) + " limit",
                        "mem", mem);
    }
    if (failed && limits.address_space &&
        c.peak_vsize_bytes > kAttributionShare * static_cast<double>(*limits.address_space)) {
      return limitation("REASON_CONTAINER_LIMITATION_MEMORY",
                        "Memory limit exceeded: the task failed after one of its processes "
                        "reserved " + mb(c.peak_vsize_bytes) + " of address space, its limit "
                        "(RLIMIT_AS) is " + mb(static_cast<double>(*limits.address_space)),
                        "mem", mem);
    }
    return "";
  }

  void cleanup(const std::string& id) {
    containers_.erase(id);
    limits_.erase(id);
  }

 private:
  pmm::Host host_;
  double address_space_factor_;
  double address_space_headroom_mb_;
  double cpu_time_seconds_;
  pmm_posix::Containers containers_;
  std::map<std::string, Limits> limits_;
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

const pmm_module_descriptor kRlimits = pmm::describe_bundled<PosixRlimits>(
    PMM_KIND_ISOLATOR, "org_pymesos_PosixRlimits",
    "posix/rlimits: limits a task's memory (RSS watch + RLIMIT_AS) and cpu time (RLIMIT_CPU); "
    "applies the task's container.rlimit_info",
    &kRlimitsTable);
const pmm_module_descriptor kUsage = pmm::describe_bundled<PosixUsage>(
    PMM_KIND_ISOLATOR, "org_pymesos_PosixUsage",
    "posix/usage: cpu time, RSS, processes and threads of a task from /proc", &kUsageTable);

}  // namespace

PMM_EXPORT_MODULES(&kRlimits, &kUsage)
