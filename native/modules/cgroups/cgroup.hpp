// The cgroup filesystem as the cgroups isolators use it: finding where a
// controller is mounted (cgroup v1 or v2), reading and writing control files
// with errors that name the file, and making and destroying cgroups.
#ifndef PMM_CGROUPS_CGROUP_HPP
#define PMM_CGROUPS_CGROUP_HPP

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pymesos_modules/module.hpp"

namespace pmm_cgroups {

enum class Version { kV1, kV2 };

// Where one controller's cgroups live.
struct Mount {
  std::string controller;  // "memory", "cpu", "cpuacct"
  Version version = Version::kV1;
  std::string path;        // the mount point (v1) or the cgroup2 mount (v2)
};

// The mounts of `controllers` under `hierarchy` (Mesos' --cgroups_hierarchy):
// the hierarchy itself when it is a cgroup2 mount whose cgroup.controllers
// lists them all ("cpuacct" is part of "cpu" there), else one cgroup v1 mount
// at or under it per controller.  Every mount must be writable.  Throws
// pmm::Error(PMM_ERR_UNSUPPORTED) saying what is missing and what was found.
std::vector<Mount> locate(const std::string& hierarchy, const std::vector<std::string>& controllers);

// For compatible(): "" when some hierarchy on this host (the usual
// /sys/fs/cgroup or any mounted one) has `controllers` writable, else why not.
std::string unavailable(const std::vector<std::string>& controllers);

// Whole-file read; throws naming the path.
std::string read_file(const std::string& path);
// Write `value` to a control file; throws naming the path, the value and errno.
void write_file(const std::string& path, const std::string& value);
// As write_file, but returns errno (0 on success) instead of throwing.
int try_write_file(const std::string& path, const std::string& value);
bool exists(const std::string& path);
// "key value" lines (memory.stat, cpu.stat, memory.events, ...).
std::map<std::string, double> read_keyed(const std::string& path);
// A file holding one number ("max" and v1's huge "unlimited" read as nullopt).
std::optional<double> read_number(const std::string& path);
// The pids in a cgroup.procs (or tasks) file; missing file -> none.
std::vector<pid_t> read_pids(const std::string& path);

// mkdir -p; an existing folder is fine.
void make_dirs(const std::string& path);
// Names of the sub-folders of `path` (none when it does not exist).
std::vector<std::string> children(const std::string& path);
// Kill everything in the cgroup `path` and its descendants (SIGKILL, until
// empty or about a second has passed), then remove them.  True when gone
// (or never there); false with `why` set otherwise.
bool destroy(const std::string& path, std::string* why);

// `--cgroups_root` as a relative path: no "..", ".", empty parts or NUL.
std::string clean_root(const std::string& root);
// A container id usable as one folder name.
void check_name(const std::string& container_id);

}  // namespace pmm_cgroups

#endif  // PMM_CGROUPS_CGROUP_HPP
