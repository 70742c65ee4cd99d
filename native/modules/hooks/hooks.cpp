// Built-in hook modules, written with pymesos_modules/hook.hpp (a class per
// hook; the table gets an entry for each hook method the class declares):
//   org_pymesos_ExampleHook      every hook moment, each leaving a visible mark
//   org_pymesos_ServiceDiscovery keeps a hosts-style file of running tasks
//                                (task name -> agent host:ports) for load
//                                balancers or DNS to read
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bundled.h"
#include "pymesos_modules/hook.hpp"
#include "pymesos_modules/module.hpp"

namespace {

using json = nlohmann::json;

json parse(const std::string& text, const char* what) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object())
    throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is not a JSON object");
  return value;
}

// The labels of a TaskInfo plus one more (Mesos JSON: {"labels": {"labels": [...]}}).
json labels_plus(const json& task, const std::string& key, const std::string& value) {
  json labels = json::array();
  if (task.contains("labels") && task["labels"].is_object())
    labels = task["labels"].value("labels", json::array());
  if (!labels.is_array()) throw pmm::Error(PMM_ERR_INVALID, "task_info_json.labels.labels is not a list");
  labels.push_back({{"key", key}, {"value", value}});
  return labels;
}

json list_of(const json& document, const char* key, const char* what) {
  json list = document.value(key, json::array());
  if (!list.is_array()) throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is not a list");
  return list;
}

class ExampleHook {
 public:
  ExampleHook(pmm::Host host, const pmm::Parameters& params)
      : host_(host), tag_(params.get_or("tag", "example")) {
    params.only({"tag"});
  }

  std::string master_launch_task_label_decorator(const std::string& task, const std::string&,
                                                 const std::string& agent_id) {
    return labels_plus(parse(task, "task_info_json"), "pmm.hook/master", tag_ + "@" + agent_id)
        .dump();
  }
  void master_agent_lost(const std::string& agent_id, const std::string& hostname) {
    host_.warning("agent " + agent_id + " on " + hostname + " is lost");
    host_.counter_add("example_hook/agents_lost", 1);
  }
  std::string agent_run_task_label_decorator(const std::string& task, const std::string&,
                                             const std::string& agent) {
    std::string host = parse(agent, "agent_info_json").value("hostname", "");
    return labels_plus(parse(task, "task_info_json"), "pmm.hook/agent", tag_ + "@" + host).dump();
  }
  std::string agent_task_environment_decorator(const std::string& task,
                                               const std::string& environment) {
    json env = parse(environment, "environment_json");
    env["PMM_HOOK_TAG"] = tag_;
    env["PMM_HOOK_TASK_NAME"] = parse(task, "task_info_json").value("name", "");
    return env.dump();
  }
  std::string agent_task_status_decorator(const std::string&, const std::string& status) {
    std::string state = parse(status, "status_json").value("state", "");
    json labels = json::array({{{"key", "pmm.hook/status"}, {"value", tag_ + ":" + state}}});
    return json{{"labels", labels}}.dump();
  }
  std::string agent_resources_decorator(const std::string& agent) {
    json resources = list_of(parse(agent, "agent_info_json"), "resources", "agent resources");
    resources.push_back({{"name", "hook_units"}, {"type", "SCALAR"}, {"scalar", {{"value", 1}}}});
    return resources.dump();
  }
  std::string agent_attributes_decorator(const std::string& agent) {
    json attributes = list_of(parse(agent, "agent_info_json"), "attributes", "agent attributes");
    attributes.push_back({{"name", "hook"}, {"type", "TEXT"}, {"text", {{"value", tag_}}}});
    return attributes.dump();
  }

 private:
  pmm::Host host_;
  std::string tag_;
};

// One word of a hosts-file line: whitespace and control characters would
// split or break the line a reader parses, so they become '_'.
std::string word(const std::string& text) {
  std::string out = text;
  for (char& c : out)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) c = '_';
  return out;
}

// Keeps `path` listing every running task, one line each, sorted:
//   <task name> <host>[:<port>[,<port>...]]
// rewritten atomically (temporary file + rename) on each change so a reader
// never sees half a file.
class ServiceDiscovery {
 public:
  ServiceDiscovery(pmm::Host host, const pmm::Parameters& params)
      : host_(host), path_(params.require("path")) {
    params.only({"path"});
    if (path_.empty()) throw pmm::Error(PMM_ERR_INVALID, "parameter 'path' is empty");
    write_file();  // fail at start if the folder is not writable
  }

  // A task about to run: remember its name and ports (its TaskInfo is only
  // seen here; status updates carry ids, not names or resources).
  std::string agent_run_task_label_decorator(const std::string& task_json, const std::string&,
                                             const std::string& agent_json) {
    json task = parse(task_json, "task_info_json");
    Entry entry;
    entry.name = task.value("name", "");
    entry.host = parse(agent_json, "agent_info_json").value("hostname", "");
    for (const json& r : list_of(task, "resources", "task_info_json.resources")) {
      if (!r.is_object() || r.value("name", "") != "ports" || !r.contains("ranges")) continue;
      for (const json& range : list_of(r["ranges"], "range", "ports ranges")) {
        uint64_t begin = range.value("begin", uint64_t{0}), end = range.value("end", uint64_t{0});
        if (begin > end || end > 65535)
          throw pmm::Error(PMM_ERR_INVALID, "task '" + entry.name + "' has a bad ports range " +
                                                std::to_string(begin) + "-" + std::to_string(end));
        for (uint64_t port = begin; port <= end; ++port) entry.ports.push_back(port);
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    known_[task_id(task)] = entry;
    return "";  // labels unchanged
  }

  std::string agent_task_status_decorator(const std::string&, const std::string& status_json) {
    json status = parse(status_json, "status_json");
    std::string state = status.value("state", "");
    std::string id = task_id(status);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = known_.find(id);
    if (it == known_.end()) return "";
    if (state == "TASK_RUNNING") {
      if (it->second.running) return "";
      it->second.running = true;
    } else if (terminal(state)) {
      bool listed = it->second.running;
      known_.erase(it);
      if (!listed) return "";
    } else {
      return "";
    }
    write_file();
    return "";  // the status itself is unchanged
  }

 private:
  struct Entry {
    std::string name, host;
    std::vector<uint64_t> ports;
    bool running = false;
  };

  static std::string task_id(const json& object) {
    if (!object.contains("task_id") || !object["task_id"].is_object())
      throw pmm::Error(PMM_ERR_INVALID, "document has no task_id");
    return object["task_id"].value("value", "");
  }
  static bool terminal(const std::string& state) {
    static const char* const kTerminal[] = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED",
                                            "TASK_LOST",     "TASK_ERROR",  "TASK_DROPPED",
                                            "TASK_GONE"};
    for (const char* t : kTerminal)
      if (state == t) return true;
    return false;
  }

  // Called with mutex_ held (or from the constructor).
  void write_file() {
    std::vector<std::string> lines;
    for (const auto& [id, e] : known_) {
      if (!e.running) continue;
      std::string line = word(e.name.empty() ? id : e.name) + " " + word(e.host);
      for (size_t i = 0; i < e.ports.size(); ++i)
        line += (i == 0 ? ":" : ",") + std::to_string(e.ports[i]);
      lines.push_back(line);
    }
    std::sort(lines.begin(), lines.end());
    std::string temporary = path_ + ".tmp." + std::to_string(getpid());
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << "# written by org_pymesos_ServiceDiscovery: <task name> <host>[:<port>[,<port>...]]\n";
      for (const std::string& line : lines) out << line << "\n";
      out.close();
      if (!out) {
        std::remove(temporary.c_str());
        throw pmm::Error(PMM_ERR_GENERIC, "cannot write '" + temporary + "' (parameter 'path')");
      }
    }
    if (std::rename(temporary.c_str(), path_.c_str()) != 0) {
      std::remove(temporary.c_str());
      throw pmm::Error(PMM_ERR_GENERIC,
                       "cannot rename '" + temporary + "' to '" + path_ + "' (parameter 'path')");
    }
    host_.gauge_set("service_discovery/tasks", static_cast<double>(lines.size()));
  }

  pmm::Host host_;
  std::string path_;
  std::mutex mutex_;
  std::map<std::string, Entry> known_;
};

const pmm_hook_vtable kExampleTable = pmm::hook_vtable<ExampleHook>();
const pmm_hook_vtable kDiscoveryTable = pmm::hook_vtable<ServiceDiscovery>();

const pmm_module_descriptor kExample = pmm::describe_bundled<ExampleHook>(
    PMM_KIND_HOOK, "org_pymesos_ExampleHook",
    "Marks every hook moment (labels, environment, status, "
    "agent resources and attributes)", &kExampleTable);
const pmm_module_descriptor kDiscovery = pmm::describe_bundled<ServiceDiscovery>(
    PMM_KIND_HOOK, "org_pymesos_ServiceDiscovery",
    "Keeps a hosts-style file of running tasks and their host:ports (parameter 'path')",
    &kDiscoveryTable);

}  // namespace

PMM_EXPORT_MODULES(&kExample, &kDiscovery)
