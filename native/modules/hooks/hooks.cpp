// Built-in hook modules:
//   org_pymesos_ExampleHook      every hook moment, each leaving a visible mark
//   org_pymesos_ServiceDiscovery keeps a hosts-style file of running tasks
//                                (task name -> agent host:ports) for load
//                                balancers or DNS to read
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pymesos_modules/hook.h"
#include "pymesos_modules/module.hpp"

namespace {

using json = nlohmann::json;

json parse(const char* text, const char* what) {
  if (text == nullptr) throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is NULL");
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is not JSON");
  return value;
}

// The labels of a TaskInfo plus one more (Mesos JSON: {"labels": {"labels": [...]}}).
json labels_plus(const json& task, const std::string& key, const std::string& value) {
  json labels = json::array();
  if (task.contains("labels") && task["labels"].is_object())
    labels = task["labels"].value("labels", json::array());
  labels.push_back({{"key", key}, {"value", value}});
  return labels;
}

class ExampleHook {
 public:
  ExampleHook(pmm::Host host, const pmm::Parameters& params)
      : host_(host), tag_(params.get_or("tag", "example")) {}

  std::string master_label(const json& task, const std::string& agent_id) {
    return labels_plus(task, "pmm.hook/master", tag_ + "@" + agent_id).dump();
  }
  void agent_lost(const std::string& agent_id, const std::string& hostname) {
    host_.warning("agent " + agent_id + " on " + hostname + " is lost");
    host_.counter_add("example_hook/agents_lost", 1);
  }
  std::string agent_label(const json& task, const json& agent) {
    return labels_plus(task, "pmm.hook/agent", tag_ + "@" + agent.value("hostname", "")).dump();
  }
  std::string environment(const json& task, json env) {
    env["PMM_HOOK_TAG"] = tag_;
    env["PMM_HOOK_TASK_NAME"] = task.value("name", "");
    return env.dump();
  }
  std::string status(const json& status) {
    json labels = json::array({{{"key", "pmm.hook/status"}, {"value", tag_ + ":" + status.value("state", "")}}});
    return json{{"labels", labels}}.dump();
  }
  std::string resources(const json& agent) {
    json resources = agent.value("resources", json::array());
    resources.push_back({{"name", "hook_units"}, {"type", "SCALAR"}, {"scalar", {{"value", 1}}}});
    return resources.dump();
  }
  std::string attributes(const json& agent) {
    json attributes = agent.value("attributes", json::array());
    attributes.push_back({{"name", "hook"}, {"type", "TEXT"}, {"text", {{"value", tag_}}}});
    return attributes.dump();
  }

 private:
  pmm::Host host_;
  std::string tag_;
};

// Keeps `path` listing every running task: "<name> <host>:<port> ..." per
// line, sorted, rewritten atomically (temporary file + rename) on each
// change so a reader never sees half a file.
class ServiceDiscovery {
 public:
  ServiceDiscovery(pmm::Host host, const pmm::Parameters& params)
      : host_(host), path_(params.require("path")) {
    write_file();  // fail at start if the folder is not writable
  }

  // A task about to run: remember its name and ports (its TaskInfo is only
  // seen here; status updates carry ids, not names or resources).
  void launching(const json& task, const json& agent) {
    Entry entry;
    entry.name = task.value("name", "");
    entry.host = agent.value("hostname", "");
    for (const json& r : task.value("resources", json::array())) {
      if (r.value("name", "") != "ports" || !r.contains("ranges")) continue;
      for (const json& range : r["ranges"].value("range", json::array())) {
        for (uint64_t p = range.value("begin", 0ULL); p <= range.value("end", 0ULL); ++p)
          entry.ports.push_back(p);
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    known_[task_id(task)] = entry;
  }

  void status(const json& status) {
    std::string state = status.value("state", "");
    std::string id = task_id(status);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = known_.find(id);
    if (it == known_.end()) return;
    if (state == "TASK_RUNNING") {
      if (it->second.running) return;
      it->second.running = true;
    } else if (terminal(state)) {
      known_.erase(it);
    } else {
      return;
    }
    write_file();
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

  void write_file() {
    std::vector<std::string> lines;
    for (const auto& [id, e] : known_) {
      if (!e.running) continue;
      std::string line = e.name.empty() ? id : e.name;
      if (e.ports.empty()) line += " " + e.host;
      for (uint64_t p : e.ports) line += " " + e.host + ":" + std::to_string(p);
      lines.push_back(line);
    }
    std::sort(lines.begin(), lines.end());
    std::string temporary = path_ + ".tmp." + std::to_string(getpid());
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << "# written by org_pymesos_ServiceDiscovery: <task name> <host>:<port>...\n";
      for (const std::string& line : lines) out << line << "\n";
      out.close();
      if (!out) throw pmm::Error(PMM_ERR_GENERIC, "cannot write '" + temporary + "'");
    }
    if (std::rename(temporary.c_str(), path_.c_str()) != 0)
      throw pmm::Error(PMM_ERR_GENERIC, "cannot rename '" + temporary + "' to '" + path_ + "'");
    host_.gauge_set("service_discovery/tasks", static_cast<double>(lines.size()));
  }

  pmm::Host host_;
  std::string path_;
  std::mutex mutex_;
  std::map<std::string, Entry> known_;
};

const pmm_hook_vtable kExampleTable = [] {
  pmm_hook_vtable t{};
  t.struct_size = sizeof t;
  t.master_launch_task_label_decorator = [](void* self, const char* task, const char*,
                                            const char* agent_id, pmm_output* out,
                                            pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      pmm::write(out, h.master_label(parse(task, "task_info_json"), agent_id ? agent_id : ""));
    });
  };
  t.master_agent_lost = [](void* self, const char* agent_id, const char* hostname,
                           pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      h.agent_lost(agent_id ? agent_id : "", hostname ? hostname : "");
    });
  };
  t.agent_run_task_label_decorator = [](void* self, const char* task, const char*,
                                        const char* agent, pmm_output* out,
                                        pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      pmm::write(out, h.agent_label(parse(task, "task_info_json"), parse(agent, "agent_info_json")));
    });
  };
  t.agent_task_environment_decorator = [](void* self, const char* task, const char* env,
                                          pmm_output* out, pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      pmm::write(out, h.environment(parse(task, "task_info_json"), parse(env, "environment_json")));
    });
  };
  t.agent_task_status_decorator = [](void* self, const char*, const char* status, pmm_output* out,
                                     pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      pmm::write(out, h.status(parse(status, "status_json")));
    });
  };
  t.agent_resources_decorator = [](void* self, const char* agent, pmm_output* out,
                                   pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      pmm::write(out, h.resources(parse(agent, "agent_info_json")));
    });
  };
  t.agent_attributes_decorator = [](void* self, const char* agent, pmm_output* out,
                                    pmm_error* error) noexcept {
    return pmm::call<ExampleHook>(self, error, [&](ExampleHook& h) {
      pmm::write(out, h.attributes(parse(agent, "agent_info_json")));
    });
  };
  return t;
}();

const pmm_hook_vtable kDiscoveryTable = [] {
  pmm_hook_vtable t{};
  t.struct_size = sizeof t;
  t.agent_run_task_label_decorator = [](void* self, const char* task, const char*,
                                        const char* agent, pmm_output*, pmm_error* error) noexcept {
    return pmm::call<ServiceDiscovery>(self, error, [&](ServiceDiscovery& d) {
      d.launching(parse(task, "task_info_json"), parse(agent, "agent_info_json"));
    });
  };
  t.agent_task_status_decorator = [](void* self, const char*, const char* status, pmm_output*,
                                     pmm_error* error) noexcept {
    return pmm::call<ServiceDiscovery>(self, error, [&](ServiceDiscovery& d) {
      d.status(parse(status, "status_json"));
    });
  };
  return t;
}();

const pmm_module_descriptor kExample = pmm::describe<ExampleHook>(
    PMM_KIND_HOOK, "org_pymesos_ExampleHook", "0.1.0", "pymesos-modules",
    "pymesos-modules@example.invalid", "Marks every hook moment (labels, environment, status, "
    "agent resources and attributes)", &kExampleTable);
const pmm_module_descriptor kDiscovery = pmm::describe<ServiceDiscovery>(
    PMM_KIND_HOOK, "org_pymesos_ServiceDiscovery", "0.1.0", "pymesos-modules",
    "pymesos-modules@example.invalid",
    "Keeps a hosts-style file of running tasks and their host:ports (parameter 'path')",
    &kDiscoveryTable);

}  // namespace

PMM_EXPORT_MODULES(&kExample, &kDiscovery)
