// Built-in oversubscription modules, as Mesos ships them:
//   org_pymesos_NoopEstimator      (`noop`): nothing may be oversubscribed
//   org_pymesos_FixedEstimator     (`fixed`): a fixed amount of revocable
//       resources, minus what revocable tasks hold already
//   org_pymesos_NoopQoSController  (`noop`): never corrects anything
//   org_pymesos_LoadQoSController  (`load`): kills every revocable task while
//       the 5- or 15-minute load average is above its threshold
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>

#include "bundled.h"
#include "pymesos_modules/module.hpp"
#include "pymesos_modules/oversubscription.hpp"

namespace {

using json = nlohmann::json;

json parse_usage(const std::string& text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object())
    throw pmm::Error(PMM_ERR_INVALID, "usage_json is not a JSON object");
  const json& executors = value.value("executors", json::array());
  if (!executors.is_array()) throw pmm::Error(PMM_ERR_INVALID, "usage_json.executors is not a list");
  for (const json& executor : executors)
    if (!executor.is_object())
      throw pmm::Error(PMM_ERR_INVALID, "usage_json.executors holds a non-object");
  return value;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

// "cpus:2;mem:512" (Mesos' resource string; scalars only, `name(*)` accepted
// since revocable resources are unreserved).
std::map<std::string, double> parse_scalars(const std::string& text) {
  std::map<std::string, double> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ';')) {
    item = trim(item);
    if (item.empty()) continue;
    auto colon = item.find(':');
    std::string name = trim(item.substr(0, colon));
    if (name.size() > 3 && name.compare(name.size() - 3, 3, "(*)") == 0)
      name.resize(name.size() - 3);
    if (colon == std::string::npos || name.empty())
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'resources': '" + item + "' is not name:amount");
    if (name.find_first_of("()[]{}") != std::string::npos)
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'resources': '" + item +
                                            "': revocable resources cannot be reserved to a role");
    std::string amount = trim(item.substr(colon + 1));
    char* end = nullptr;
    double value = std::strtod(amount.c_str(), &end);
    if (amount.empty() || *end != '\0' || !std::isfinite(value) || value < 0)
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'resources': '" + item +
                                            "' needs a scalar amount >= 0 (ranges and sets "
                                            "cannot be oversubscribed)");
    if (!out.emplace(name, value).second)
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'resources': '" + name + "' is given twice");
  }
  if (out.empty()) throw pmm::Error(PMM_ERR_INVALID, "parameter 'resources' names no resource");
  return out;
}

class NoopEstimator {
 public:
  NoopEstimator(pmm::Host, const pmm::Parameters& params) { params.only({}); }
  std::string oversubscribable(const std::string&) { return "{}"; }
};

class FixedEstimator {
 public:
  FixedEstimator(pmm::Host, const pmm::Parameters& params) {
    params.only({"resources"});
    fixed_ = parse_scalars(params.require("resources"));
  }

  std::string oversubscribable(const std::string& usage_json) {
    json usage = parse_usage(usage_json);
    std::map<std::string, double> left = fixed_;
    for (const json& executor : usage.value("executors", json::array())) {
      if (!executor.value("revocable", false)) continue;
      // Named: items() of a temporary would dangle.
      const json resources = executor.value("resources", json::object());
      if (!resources.is_object()) continue;
      for (const auto& [name, amount] : resources.items()) {
        auto it = left.find(name);
        if (it != left.end() && amount.is_number()) it->second -= amount.get<double>();
      }
    }
    json answer = json::object();
    for (const auto& [name, amount] : left) answer[name] = amount > 0 ? amount : 0.0;
    return answer.dump();
  }

 private:
  std::map<std::string, double> fixed_;
};

class NoopQoSController {
 public:
  NoopQoSController(pmm::Host, const pmm::Parameters& params) { params.only({}); }
  std::string corrections(const std::string&) { return "[]"; }
};

double threshold(const pmm::Parameters& params, const char* key) {
  double value = params.get_double(key, INFINITY);
  if (params.has(key) && !(value > 0 && std::isfinite(value)))
    throw pmm::Error(PMM_ERR_INVALID, std::string("parameter '") + key + "' must be a number > 0, got '" +
                                          params.get_or(key, "") + "'");
  return value;
}

class LoadQoSController {
 public:
  LoadQoSController(pmm::Host host, const pmm::Parameters& params)
      : host_(host),
        threshold5_(threshold(params, "load_threshold_5min")),
        threshold15_(threshold(params, "load_threshold_15min")),
        loadavg_path_(params.get_or("loadavg_path", "")) {
    params.only({"load_threshold_5min", "load_threshold_15min", "loadavg_path"});
    if (std::isinf(threshold5_) && std::isinf(threshold15_))
      throw pmm::Error(PMM_ERR_INVALID,
                       "needs parameter 'load_threshold_5min' or 'load_threshold_15min'");
    if (params.has("loadavg_path") && loadavg_path_.empty())
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'loadavg_path' is empty");
    load();  // an unreadable load average is a configuration error, found at start
  }

  std::string corrections(const std::string& usage_json) {
    json usage = parse_usage(usage_json);
    auto [load5, load15] = load();
    std::string why;
    char text[160];
    // As Mesos: the 1-minute average is too jumpy to preempt on.
    if (load5 > threshold5_) {
      std::snprintf(text, sizeof text, "5-minute load average %.2f is above %.2f", load5, threshold5_);
      why = text;
    } else if (load15 > threshold15_) {
      std::snprintf(text, sizeof text, "15-minute load average %.2f is above %.2f", load15,
                    threshold15_);
      why = text;
    }
    json answer = json::array();
    if (why.empty()) return answer.dump();
    for (const json& executor : usage.value("executors", json::array())) {
      if (!executor.value("revocable", false)) continue;
      answer.push_back({{"container_id", executor.value("container_id", "")},
                        {"task_id", executor.value("task_id", "")},
                        {"framework_id", executor.value("framework_id", "")},
                        {"message", why}});
    }
    if (!answer.empty()) {
      host_.warning(why + ": preempting " + std::to_string(answer.size()) + " revocable task(s)");
      host_.counter_add("qos/load/corrections", static_cast<double>(answer.size()));
    }
    return answer.dump();
  }

 private:
  // (5-minute, 15-minute) load averages: getloadavg(3), or the first three
  // numbers of `loadavg_path` (/proc/loadavg's format) so tests and
  // containers can point it at a file they control.
  std::pair<double, double> load() const {
    if (loadavg_path_.empty()) {
      double averages[3];
      if (getloadavg(averages, 3) != 3)
        throw pmm::Error(PMM_ERR_GENERIC, "cannot read the load average (getloadavg failed)");
      return {averages[1], averages[2]};
    }
    std::ifstream file(loadavg_path_);
    double one = 0, five = 0, fifteen = 0;
    if (!(file >> one >> five >> fifteen))
      throw pmm::Error(PMM_ERR_GENERIC, "cannot read the load average from '" + loadavg_path_ +
                                            "' (parameter 'loadavg_path')");
    return {five, fifteen};
  }

  pmm::Host host_;
  double threshold5_, threshold15_;
  std::string loadavg_path_;
};

const pmm_resource_estimator_vtable kNoopEstimatorTable =
    pmm::resource_estimator_vtable<NoopEstimator>();
const pmm_resource_estimator_vtable kFixedTable = pmm::resource_estimator_vtable<FixedEstimator>();
const pmm_qos_controller_vtable kNoopQoSTable = pmm::qos_controller_vtable<NoopQoSController>();
const pmm_qos_controller_vtable kLoadTable = pmm::qos_controller_vtable<LoadQoSController>();

const pmm_module_descriptor kNoopEstimator = pmm::describe_bundled<NoopEstimator>(
    PMM_KIND_RESOURCE_ESTIMATOR, "org_pymesos_NoopEstimator",
    "noop: nothing may be oversubscribed", &kNoopEstimatorTable);
const pmm_module_descriptor kFixed = pmm::describe_bundled<FixedEstimator>(
    PMM_KIND_RESOURCE_ESTIMATOR, "org_pymesos_FixedEstimator",
    "fixed: offers a fixed amount of revocable resources (parameter 'resources')", &kFixedTable);
const pmm_module_descriptor kNoopQoS = pmm::describe_bundled<NoopQoSController>(
    PMM_KIND_QOS_CONTROLLER, "org_pymesos_NoopQoSController",
    "noop: never preempts a task", &kNoopQoSTable);
const pmm_module_descriptor kLoad = pmm::describe_bundled<LoadQoSController>(
    PMM_KIND_QOS_CONTROLLER, "org_pymesos_LoadQoSController",
    "load: preempts revocable tasks while the load average is above a threshold", &kLoadTable);

}  // namespace

PMM_EXPORT_MODULES(&kNoopEstimator, &kFixed, &kNoopQoS, &kLoad)
