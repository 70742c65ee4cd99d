// Built-in oversubscription modules, as Mesos ships them:
//   org_pymesos_FixedEstimator   (`fixed`): a fixed amount of revocable
//       resources, minus what revocable tasks hold already
//   org_pymesos_LoadQoSController (`load`): kills every revocable task while
//       the 5- or 15-minute load average is above its threshold
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "pymesos_modules/module.hpp"
#include "pymesos_modules/qos_controller.h"
#include "pymesos_modules/resource_estimator.h"

namespace {

using json = nlohmann::json;

json parse(const char* text, const char* what) {
  if (text == nullptr) throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is NULL");
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object())
    throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " is not a JSON object");
  return value;
}

// "cpus:2;mem:512" (Mesos' resource string, scalars only).
std::map<std::string, double> parse_scalars(const std::string& text) {
  std::map<std::string, double> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ';')) {
    if (item.empty()) continue;
    auto colon = item.find(':');
    std::string name = item.substr(0, colon);
    if (colon == std::string::npos || name.empty())
      throw pmm::Error(PMM_ERR_INVALID, "parameter 'resources': '" + item + "' is not name:amount");
    std::string amount = item.substr(colon + 1);
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

class FixedEstimator {
 public:
  FixedEstimator(pmm::Host, const pmm::Parameters& params)
      : fixed_(parse_scalars(params.require("resources"))) {}

  std::string oversubscribable(const char* usage_json) {
    json usage = parse(usage_json, "usage_json");
    std::map<std::string, double> left = fixed_;
    for (const json& executor : usage.value("executors", json::array())) {
      if (!executor.value("revocable", false)) continue;
      // Named: items() of a temporary would dangle.
      const json resources = executor.value("resources", json::object());
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

class LoadQoSController {
 public:
  LoadQoSController(pmm::Host host, const pmm::Parameters& params)
      : host_(host),
        threshold5_(params.get_double("load_threshold_5min", INFINITY)),
        threshold15_(params.get_double("load_threshold_15min", INFINITY)),
        loadavg_path_(params.get_or("loadavg_path", "/proc/loadavg")) {
    if (std::isinf(threshold5_) && std::isinf(threshold15_))
      throw pmm::Error(PMM_ERR_INVALID,
                       "needs parameter 'load_threshold_5min' or 'load_threshold_15min'");
    if (threshold5_ <= 0 || threshold15_ <= 0)
      throw pmm::Error(PMM_ERR_INVALID, "load thresholds must be > 0");
    load();  // an unreadable load average is a configuration error, found at start
  }

  std::string corrections(const char* usage_json) {
    json usage = parse(usage_json, "usage_json");
    auto [load5, load15] = load();
    std::string why;
    char text[160];
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
  std::pair<double, double> load() const {
    std::ifstream file(loadavg_path_);
    double one = 0, five = 0, fifteen = 0;
    if (!(file >> one >> five >> fifteen))
      throw pmm::Error(PMM_ERR_GENERIC, "cannot read the load average from '" + loadavg_path_ + "'");
    return {five, fifteen};
  }

  pmm::Host host_;
  double threshold5_, threshold15_;
  std::string loadavg_path_;
};

const pmm_resource_estimator_vtable kEstimatorTable = [] {
  pmm_resource_estimator_vtable t{};
  t.struct_size = sizeof t;
  t.oversubscribable = [](void* self, const char* usage, pmm_output* out, pmm_error* error) noexcept {
    return pmm::call<FixedEstimator>(self, error, [&](FixedEstimator& e) {
      pmm::write(out, e.oversubscribable(usage));
    });
  };
  return t;
}();

const pmm_qos_controller_vtable kQoSTable = [] {
  pmm_qos_controller_vtable t{};
  t.struct_size = sizeof t;
  t.corrections = [](void* self, const char* usage, pmm_output* out, pmm_error* error) noexcept {
    return pmm::call<LoadQoSController>(self, error, [&](LoadQoSController& q) {
      pmm::write(out, q.corrections(usage));
    });
  };
  return t;
}();

const pmm_module_descriptor kFixed = pmm::describe<FixedEstimator>(
    PMM_KIND_RESOURCE_ESTIMATOR, "org_pymesos_FixedEstimator", "0.1.0", "pymesos-modules",
    "pymesos-modules@example.invalid",
    "fixed: offers a fixed amount of revocable resources (parameter 'resources')",
    &kEstimatorTable);
const pmm_module_descriptor kLoad = pmm::describe<LoadQoSController>(
    PMM_KIND_QOS_CONTROLLER, "org_pymesos_LoadQoSController", "0.1.0", "pymesos-modules",
    "pymesos-modules@example.invalid",
    "load: preempts revocable tasks while the load average is above a threshold", &kQoSTable);

}  // namespace

PMM_EXPORT_MODULES(&kFixed, &kLoad)
