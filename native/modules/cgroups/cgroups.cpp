// The built-in cgroups isolators, Mesos' `cgroups/mem` and `cgroups/cpu`:
// a cgroup per container (cgroup v1 or v2, found at create()), the task's
// processes placed in it before its command runs (the launch info's
// "cgroups"), limits from its resources, usage read from the cgroup, OOM
// kills reported as REASON_CONTAINER_LIMITATION_MEMORY, the cgroup removed
// at cleanup() and orphans of a crashed agent destroyed at recover().
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bundled.h"
#include "cgroup.hpp"
#include "pymesos_modules/isolator.hpp"

namespace {

using json = nlohmann::json;
using pmm_cgroups::Mount;
using pmm_cgroups::Version;

constexpr double kMB = 1024.0 * 1024.0;
constexpr const char* kDefaultHierarchy = "/sys/fs/cgroup";
constexpr const char* kDefaultRoot = "pymesos_modules";

double resource_or(const pmm::Resources& resources, const char* name, double fallback) {
  auto it = resources.find(name);
  return it != resources.end() ? it->second : fallback;
}

bool flag(const pmm::Parameters& params, const char* key, bool fallback) {
  std::string value = params.get_or(key, fallback ? "true" : "false");
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  throw pmm::Error(PMM_ERR_INVALID,
                   std::string("parameter '") + key + "' must be true or false, got '" + value + "'");
}

// "64MB", "12.5MB": Mesos' Bytes wording.
std::string megabytes(double bytes) {
  char text[48];
  double mb = bytes / kMB;
  if (std::fabs(mb - std::round(mb)) < 0.05)
    std::snprintf(text, sizeof text, "%.0fMB", mb);
  else
    std::snprintf(text, sizeof text, "%.1fMB", mb);
  return text;
}

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// What both isolators share: finding the hierarchy, one cgroup folder per
// controller mount and container, the table of containers (`State` each),
// placing processes, orphans, removal.
template <class State>
class CgroupIsolator {
 public:
  CgroupIsolator(pmm::Host host, const pmm::Parameters& params,
                 std::vector<std::string> controllers)
      : host_(host),
        controllers_(std::move(controllers)),
        hierarchy_(params.get_or("hierarchy", kDefaultHierarchy)),
        root_(pmm_cgroups::clean_root(params.get_or("root", kDefaultRoot))),
        mounts_(pmm_cgroups::locate(hierarchy_, controllers_)) {}

  void isolate(const std::string& id, int64_t pid) {
    state(id);
    join(id, pid);
  }

  void cleanup(const std::string& id) {
    state(id);
    containers_.erase(id);  // closes what the state holds first (an eventfd)
    remove(id);
  }

  // The containers a restarted agent keeps: every other cgroup under the
  // root is an orphan of a previous agent and is destroyed (as Mesos does).
  void recover(const std::vector<std::string>& ids) {
    std::set<std::string> keep(ids.begin(), ids.end());
    std::set<std::string> bases;
    for (const Mount& m : mounts_) bases.insert(m.path + "/" + root_);
    for (const std::string& base : bases) {
      for (const std::string& child : pmm_cgroups::children(base)) {
        if (keep.count(child)) continue;
        std::string why;
        if (pmm_cgroups::destroy(base + "/" + child, &why)) {
          host_.info("destroyed the orphan cgroup " + base + "/" + child +
                     " (no recovered container has that id)");
          host_.counter_add("orphans_destroyed", 1.0);
        } else {
          host_.warning("orphan cgroup left behind: " + why);
        }
      }
    }
  }

 protected:
  // The container's folder in `controller`'s mount.
  std::string folder(const std::string& controller, const std::string& id) const {
    for (const Mount& m : mounts_)
      if (m.controller == controller) return m.path + "/" + root_ + "/" + id;
    throw pmm::Error(PMM_ERR_GENERIC, "no mount for controller " + controller);
  }

  // Distinct folders of a container (v2 and v1 "cpu,cpuacct" share one).
  std::vector<std::string> folders(const std::string& id) const {
    std::vector<std::string> out;
    for (const Mount& m : mounts_) {
      std::string path = m.path + "/" + root_ + "/" + id;
      if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
    }
    return out;
  }

  Version version() const { return mounts_.front().version; }

  // Make the container's folders; true when they existed already (adopted
  // from a previous agent).  v2: the controllers are enabled on the way down.
  bool create_folders(const std::string& id) {
    pmm_cgroups::check_name(id);
    bool existed = true;
    for (const Mount& m : mounts_) {
      std::string path = m.path + "/" + root_ + "/" + id;
      existed = existed && pmm_cgroups::exists(path);
      if (m.version == Version::kV2) {
        std::string controller = m.controller == "cpuacct" ? "cpu" : m.controller;
        std::string at = m.path;
        std::string rest = root_ + "/";
        for (size_t slash; (slash = rest.find('/')) != std::string::npos; rest.erase(0, slash + 1)) {
          enable(at, controller);
          at += "/" + rest.substr(0, slash);
          pmm_cgroups::make_dirs(at);
        }
        enable(at, controller);
      }
      pmm_cgroups::make_dirs(path);
    }
    return existed;
  }

  // v2: let the children of `folder` use `controller`.  subtree_control lists
  // names apart ("cpuset io memory"): "cpu" must match a whole word, not the
  // "cpu" in "cpuset", or cpu would never be enabled beside cpuset.
  static void enable(const std::string& folder, const std::string& controller) {
    const std::string control = folder + "/cgroup.subtree_control";
    std::istringstream enabled(read_file_or_empty(control));
    std::string name;
    while (enabled >> name)
      if (name == controller) return;
    pmm_cgroups::write_file(control, "+" + controller);
  }

  // Move `pid` (and its threads) into every folder of the container.  The
  // agent's launcher already put the task there before exec; this covers a
  // host that did not, and is a no-op otherwise.  A process that is gone
  // already is no error (watch() and cleanup() still follow).
  void join(const std::string& id, int64_t pid) {
    for (const std::string& path : folders(id)) {
      int err = pmm_cgroups::try_write_file(path + "/cgroup.procs", std::to_string(pid));
      if (err != 0 && err != ESRCH)
        throw pmm::Error(PMM_ERR_GENERIC, "cannot move pid " + std::to_string(pid) + " into " +
                                              path + ": " + std::strerror(err));
    }
  }

  // Kill what is left in the container's cgroups and remove them.
  void remove(const std::string& id) {
    std::string problems;
    for (const std::string& path : folders(id)) {
      std::string why;
      if (!pmm_cgroups::destroy(path, &why)) problems += (problems.empty() ? "" : "; ") + why;
    }
    if (!problems.empty()) throw pmm::Error(PMM_ERR_GENERIC, problems);
  }

  // {"cgroups": [...]}: the folders the task joins before its command runs.
  std::string launch_info(const std::string& id) const {
    return json{{"cgroups", folders(id)}}.dump();
  }

  // Processes and threads in the container's cgroup.
  void count_processes(const std::string& id, pmm_resource_statistics& s) const {
    const std::string path = folders(id).front();
    s.processes = static_cast<double>(pmm_cgroups::read_pids(path + "/cgroup.procs").size());
    s.threads = static_cast<double>(
        pmm_cgroups::read_pids(path + (version() == Version::kV2 ? "/cgroup.threads" : "/tasks"))
            .size());
  }

  static std::string read_file_or_empty(const std::string& path) {
    try {
      return pmm_cgroups::read_file(path);
    } catch (const pmm::Error&) {
      return "";
    }
  }

  State& state(const std::string& id) {
    auto it = containers_.find(id);
    if (it == containers_.end())
      throw pmm::Error(PMM_ERR_NOT_FOUND, "unknown container '" + id + "'");
    return it->second;
  }

  void check_new(const std::string& id) const {
    if (containers_.count(id))
      throw pmm::Error(PMM_ERR_EXISTS, "container '" + id + "' is prepared already");
  }

  // Record a prepared container; its launch info.
  std::string add(const std::string& id, State&& prepared) {
    containers_.emplace(id, std::move(prepared));
    return launch_info(id);
  }

  // Prepare a container: folders made (or adopted), `configure` run, and on
  // any failure the folders this call made are removed again.
  template <class Body>
  void with_folders(const std::string& id, Body&& configure) {
    bool adopted = create_folders(id);
    try {
      configure(adopted);
    } catch (...) {
      if (!adopted) {
        std::string ignored;
        for (const std::string& path : folders(id)) pmm_cgroups::destroy(path, &ignored);
      }
      throw;
    }
  }

  pmm::Host host_;
  std::vector<std::string> controllers_;
  std::string hierarchy_;
  std::string root_;
  std::vector<Mount> mounts_;
  std::map<std::string, State> containers_;
};

// --- cgroups/mem ------------------------------------------------------------------------

// A memory limit in bytes; nullopt = unlimited.
using Limit = std::optional<double>;

struct MemContainer {
  std::string folder;
  double mem_mb = 0;            // the task's mem (soft limit)
  Limit limit_mb;               // TaskInfo.limits.mem when given (+inf: unlimited)
  Limit hard, soft;             // bytes as written
  std::unique_ptr<Fd> oom_event;  // v1: eventfd registered on memory.oom_control
  bool oom = false;             // the kernel's OOM killer acted in this cgroup
  double sampled_peak = 0;
};

// TaskInfo.limits.mem (Mesos 1.9+): a number of MB, or "Infinity"; nullopt when absent.
Limit task_memory_limit(const std::string& task_json) {
  if (task_json.empty()) return std::nullopt;
  json task = json::parse(task_json, nullptr, /*allow_exceptions=*/false);
  if (task.is_discarded() || !task.is_object())
    throw pmm::Error(PMM_ERR_INVALID, "the task (TaskInfo) is not a JSON object");
  auto limits = task.find("limits");
  if (limits == task.end() || !limits->is_object() || !limits->contains("mem")) return std::nullopt;
  const json& mem = (*limits)["mem"];
  const json* value = mem.is_object() && mem.contains("value") ? &mem["value"] : &mem;
  if (value->is_number() && value->get<double>() > 0) return value->get<double>();
  if (value->is_string()) {
    std::string text = value->get<std::string>();
    if (text == "Infinity" || text == "inf" || text == "infinity") return INFINITY;
  }
  throw pmm::Error(PMM_ERR_INVALID,
                   "task limits.mem must be a number of MB > 0 or \"Infinity\", got " + mem.dump());
}

// The memory cgroup: hard limit (memory.limit_in_bytes / memory.max) at the
// task's mem, or its limits.mem; soft limit (memory.soft_limit_in_bytes /
// memory.low) at its mem.  As Mesos, update() raises the hard limit but never
// lowers it (that could OOM-kill a task that did nothing wrong); the soft
// limit follows the resources both ways.  `limit_swap` (Mesos'
// --cgroups_limit_swap) makes the hard limit cover swap as well.
class CgroupsMem : public CgroupIsolator<MemContainer> {
 public:
  CgroupsMem(pmm::Host host, const pmm::Parameters& params)
      : CgroupIsolator(host, (params.only({"hierarchy", "root", "limit_swap"}), params),
                       {"memory"}),
        limit_swap_(flag(params, "limit_swap", false)) {}

  static bool compatible(const pmm::Host&) {
    std::string why = pmm_cgroups::unavailable({"memory"});
    if (!why.empty()) throw pmm::Error(PMM_ERR_UNSUPPORTED, "cgroups/mem: " + why);
    return true;
  }

  std::string prepare(const pmm::ContainerConfig& config) {
    const std::string& id = config.container_id;
    check_new(id);
    MemContainer c;
    c.folder = folder("memory", id);
    c.limit_mb = task_memory_limit(config.task_json);
    c.mem_mb = resource_or(config.resources, "mem", 0.0);
    if (c.limit_mb && c.mem_mb > *c.limit_mb)
      throw pmm::Error(PMM_ERR_INVALID, "task limits.mem " + megabytes(*c.limit_mb * kMB) +
                                            " is below its mem " + megabytes(c.mem_mb * kMB));
    with_folders(id, [&](bool) {
      set_limits(c, /*first=*/true);
      watch_oom(c);
    });
    return add(id, std::move(c));
  }

  void update(const std::string& id, const pmm::Resources& resources) {
    MemContainer& c = state(id);
    double mem = resource_or(resources, "mem", c.mem_mb);
    if (!(mem >= 0) || std::isinf(mem))
      throw pmm::Error(PMM_ERR_INVALID, "mem must be a number >= 0, got " + std::to_string(mem));
    c.mem_mb = mem;
    set_limits(c, /*first=*/false);
  }

  void usage(const std::string& id, pmm_resource_statistics& s) {
    MemContainer& c = state(id);
    bool v2 = version() == Version::kV2;
    auto stat = pmm_cgroups::read_keyed(c.folder + "/memory.stat");
    auto total = pmm_cgroups::read_number(c.folder + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
    if (total) {
      s.mem_total_bytes = *total;
      c.sampled_peak = std::max(c.sampled_peak, *total);
    }
    auto pick = [&](const char* a, const char* b) {
      return stat.count(a) ? stat[a] : (stat.count(b) ? stat[b] : NAN);
    };
    s.mem_rss_bytes = v2 ? pick("anon", "anon") : pick("total_rss", "rss");
    s.mem_cache_bytes = v2 ? pick("file", "file") : pick("total_cache", "cache");
    if (c.hard) s.mem_limit_bytes = *c.hard;
    if (c.soft) s.mem_soft_limit_bytes = *c.soft;
    s.timestamp = now();
    count_processes(id, s);
  }

  std::string watch(const std::string& id, bool, int) {
    MemContainer& c = state(id);
    if (!c.oom) c.oom = oom_happened(c);
    if (!c.oom) {
      auto total = pmm_cgroups::read_number(c.folder + (version() == Version::kV2 ? "/memory.current"
                                                                                  : "/memory.usage_in_bytes"));
      if (total) c.sampled_peak = std::max(c.sampled_peak, *total);
      return "";
    }
    double peak = std::max(c.sampled_peak, peak_usage(c));
    std::string limit = c.hard ? megabytes(*c.hard) : std::string("unlimited");
    std::string message = "Memory limit exceeded: Requested: " + megabytes(c.mem_mb * kMB) +
                          " Maximum Used: " + megabytes(peak) +
                          " (the kernel's OOM killer ended a process of the container at its " +
                          "hard limit of " + limit + ")";
    host_.info("container " + id + ": " + message);
    host_.counter_add("oom_kills", 1.0);
    return json{{"reason", "REASON_CONTAINER_LIMITATION_MEMORY"},
                {"message", message},
                {"resources", {{"mem", c.mem_mb}}}}
        .dump();
  }


 private:
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  }

  void set_limits(MemContainer& c, bool first) {
    bool v2 = version() == Version::kV2;
    Limit soft, hard;
    if (c.mem_mb > 0) soft = hard = c.mem_mb * kMB;
    if (c.limit_mb) hard = std::isinf(*c.limit_mb) ? Limit() : Limit(std::max(*c.limit_mb, c.mem_mb) * kMB);
    auto text = [&](Limit bytes) {
      if (!bytes) return std::string(v2 ? "max" : "-1");
      return std::to_string(static_cast<uint64_t>(*bytes));
    };
    // The hard limit only rises after the first time (see the class comment).
    bool raise = first || (c.hard && (!hard || *hard > *c.hard));
    if (raise) {
      if (v2) {
        pmm_cgroups::write_file(c.folder + "/memory.max", text(hard));
        if (limit_swap_ && pmm_cgroups::exists(c.folder + "/memory.swap.max"))
          pmm_cgroups::write_file(c.folder + "/memory.swap.max", "0");
        if (first && pmm_cgroups::exists(c.folder + "/memory.oom.group"))
          pmm_cgroups::write_file(c.folder + "/memory.oom.group", "1");
      } else {
        const std::string limit = c.folder + "/memory.limit_in_bytes";
        const std::string memsw = c.folder + "/memory.memsw.limit_in_bytes";
        if (limit_swap_ && pmm_cgroups::exists(memsw)) {
          // The kernel keeps memsw >= the limit: a limit above today's memsw
          // is refused until memsw has risen (whatever an adopted cgroup holds).
          if (pmm_cgroups::try_write_file(limit, text(hard)) == 0) {
            pmm_cgroups::write_file(memsw, text(hard));
          } else {
            pmm_cgroups::write_file(memsw, text(hard));
            pmm_cgroups::write_file(limit, text(hard));
          }
        } else {
          pmm_cgroups::write_file(limit, text(hard));
        }
      }
      c.hard = hard;
    }
    pmm_cgroups::write_file(c.folder + (v2 ? "/memory.low" : "/memory.soft_limit_in_bytes"),
                            v2 && !soft ? "0" : text(soft));
    c.soft = soft;
  }

  // v1: an eventfd on memory.oom_control, read without blocking by watch().
  void watch_oom(MemContainer& c) {
    if (version() == Version::kV2) return;  // memory.events counts oom_kill
    auto event = std::make_unique<Fd>(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (event->get() < 0)
      throw pmm::Error(PMM_ERR_GENERIC, std::string("eventfd: ") + std::strerror(errno));
    const std::string control = c.folder + "/memory.oom_control";
    Fd file(open(control.c_str(), O_RDONLY | O_CLOEXEC));
    if (file.get() < 0)
      throw pmm::Error(PMM_ERR_GENERIC, "cannot open " + control + ": " + std::strerror(errno));
    pmm_cgroups::write_file(c.folder + "/cgroup.event_control",
                            std::to_string(event->get()) + " " + std::to_string(file.get()));
    c.oom_event = std::move(event);
  }

  bool oom_happened(MemContainer& c) {
    if (version() == Version::kV2) {
      auto events = pmm_cgroups::read_keyed(c.folder + "/memory.events");
      return events["oom_kill"] > 0 || events["oom_group_kill"] > 0;
    }
    bool fired = false;
    if (c.oom_event) {
      uint64_t count = 0;
      fired = read(c.oom_event->get(), &count, sizeof count) == sizeof count && count > 0;
    }
    // "oom_kill N" (Linux 4.13+) counts the kills themselves.
    auto control = pmm_cgroups::read_keyed(c.folder + "/memory.oom_control");
    return fired || control["oom_kill"] > 0;
  }

  double peak_usage(const MemContainer& c) const {
    const std::string file =
        c.folder + (version() == Version::kV2 ? "/memory.peak" : "/memory.max_usage_in_bytes");
    if (!pmm_cgroups::exists(file)) return 0.0;
    try {
      return pmm_cgroups::read_number(file).value_or(0.0);
    } catch (const pmm::Error&) {
      return 0.0;
    }
  }

  bool limit_swap_;
};

// --- cgroups/cpu ------------------------------------------------------------------------

struct CpuContainer {
  double cpus = 0;
};

constexpr uint64_t kCfsPeriodUs = 100000;   // Mesos' default --cgroups_cpu_cfs_period
constexpr uint64_t kMinCfsQuotaUs = 1000;   // the kernel's minimum
constexpr uint64_t kCpuSharesPerCpu = 1024;
constexpr uint64_t kMinCpuShares = 2;

// The cpu cgroup: cpu.shares = 1024 per cpu (v1), cpu.weight = 100 per cpu
// (v2: weight 100 is what shares 1024 are in v1), and with `enable_cfs`
// (Mesos' --cgroups_enable_cfs) a hard CFS quota of cpus x 100 ms per 100 ms
// period.  Usage: cpu time from cpuacct (v1) / cpu.stat (v2), throttling from
// cpu.stat.
class CgroupsCpu : public CgroupIsolator<CpuContainer> {
 public:
  CgroupsCpu(pmm::Host host, const pmm::Parameters& params)
      : CgroupIsolator(host, (params.only({"hierarchy", "root", "enable_cfs"}), params),
                       {"cpu", "cpuacct"}),
        enable_cfs_(flag(params, "enable_cfs", false)) {}

  static bool compatible(const pmm::Host&) {
    std::string why = pmm_cgroups::unavailable({"cpu", "cpuacct"});
    if (!why.empty()) throw pmm::Error(PMM_ERR_UNSUPPORTED, "cgroups/cpu: " + why);
    return true;
  }

  std::string prepare(const pmm::ContainerConfig& config) {
    const std::string& id = config.container_id;
    check_new(id);
    CpuContainer c;
    c.cpus = checked_cpus(resource_or(config.resources, "cpus", 0.0));
    with_folders(id, [&](bool) { set_limits(id, c); });
    return add(id, std::move(c));
  }

  void update(const std::string& id, const pmm::Resources& resources) {
    CpuContainer& c = state(id);
    double cpus = checked_cpus(resource_or(resources, "cpus", c.cpus));
    CpuContainer next{cpus};
    set_limits(id, next);
    c = next;
  }

  void usage(const std::string& id, pmm_resource_statistics& s) {
    CpuContainer& c = state(id);
    const std::string cpu = folder("cpu", id), acct = folder("cpuacct", id);
    auto stat = pmm_cgroups::read_keyed(cpu + "/cpu.stat");
    if (version() == Version::kV2) {
      s.cpus_user_time_secs = stat["user_usec"] / 1e6;
      s.cpus_system_time_secs = stat["system_usec"] / 1e6;
      s.cpus_throttled_time_secs = stat["throttled_usec"] / 1e6;
    } else {
      if (pmm_cgroups::exists(acct + "/cpuacct.usage_user")) {
        s.cpus_user_time_secs = pmm_cgroups::read_number(acct + "/cpuacct.usage_user").value_or(0) / 1e9;
        s.cpus_system_time_secs = pmm_cgroups::read_number(acct + "/cpuacct.usage_sys").value_or(0) / 1e9;
      } else {  // older kernels: USER_HZ ticks
        auto ticks = pmm_cgroups::read_keyed(acct + "/cpuacct.stat");
        double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
        s.cpus_user_time_secs = ticks["user"] / hz;
        s.cpus_system_time_secs = ticks["system"] / hz;
      }
      s.cpus_throttled_time_secs = stat["throttled_time"] / 1e9;
    }
    s.cpus_nr_periods = stat["nr_periods"];
    s.cpus_nr_throttled = stat["nr_throttled"];
    if (c.cpus > 0) s.cpus_limit = c.cpus;
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    s.timestamp = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    count_processes(id, s);
  }

  std::string watch(const std::string& id, bool, int) {
    state(id);  // cpu is compressible: never a limitation
    return "";
  }


 private:
  static double checked_cpus(double cpus) {
    if (!(cpus >= 0) || std::isinf(cpus))
      throw pmm::Error(PMM_ERR_INVALID, "cpus must be a number >= 0, got " + std::to_string(cpus));
    return cpus;
  }

  void set_limits(const std::string& id, const CpuContainer& c) {
    if (c.cpus <= 0) return;  // no cpus: the kernel's defaults
    const std::string cpu = folder("cpu", id);
    uint64_t quota = std::max<uint64_t>(kMinCfsQuotaUs, static_cast<uint64_t>(c.cpus * kCfsPeriodUs));
    if (version() == Version::kV2) {
      double weight = std::clamp(std::round(c.cpus * 100.0), 1.0, 10000.0);
      pmm_cgroups::write_file(cpu + "/cpu.weight", std::to_string(static_cast<uint64_t>(weight)));
      pmm_cgroups::write_file(cpu + "/cpu.max", (enable_cfs_ ? std::to_string(quota) : std::string("max")) +
                                                    " " + std::to_string(kCfsPeriodUs));
      return;
    }
    uint64_t shares = std::max<uint64_t>(kMinCpuShares, static_cast<uint64_t>(c.cpus * kCpuSharesPerCpu));
    pmm_cgroups::write_file(cpu + "/cpu.shares", std::to_string(shares));
    if (enable_cfs_) {
      pmm_cgroups::write_file(cpu + "/cpu.cfs_period_us", std::to_string(kCfsPeriodUs));
      pmm_cgroups::write_file(cpu + "/cpu.cfs_quota_us", std::to_string(quota));
    }
  }

  bool enable_cfs_;
};

const pmm_isolator_vtable kMemTable = pmm::isolator_vtable<CgroupsMem>();
const pmm_isolator_vtable kCpuTable = pmm::isolator_vtable<CgroupsCpu>();

const pmm_module_descriptor kMem = pmm::describe_bundled<CgroupsMem>(
    PMM_KIND_ISOLATOR, "org_pymesos_CgroupsMem",
    "cgroups/mem: a memory cgroup per container (v1 or v2): hard and soft limits from mem, "
    "OOM kills reported as REASON_CONTAINER_LIMITATION_MEMORY, usage from the cgroup",
    &kMemTable);
const pmm_module_descriptor kCpu = pmm::describe_bundled<CgroupsCpu>(
    PMM_KIND_ISOLATOR, "org_pymesos_CgroupsCpu",
    "cgroups/cpu: a cpu cgroup per container (v1 or v2): shares/weight from cpus, CFS quota "
    "with enable_cfs, cpu time and throttling from the cgroup",
    &kCpuTable);

}  // namespace

PMM_EXPORT_MODULES(&kMem, &kCpu)
