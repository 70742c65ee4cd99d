// pymesos-modules: write a resource estimator or a QoS controller as a C++ class.
//
//   class MyEstimator {
//    public:
//     MyEstimator(pmm::Host host, const pmm::Parameters& params);
//     // usage_json as in resource_estimator.h; answer {"cpus": 2, ...} or "" for none
//     std::string oversubscribable(const std::string& usage_json);
//   };
//   static const pmm_resource_estimator_vtable kTable =
//       pmm::resource_estimator_vtable<MyEstimator>();
//
//   class MyController {
//    public:
//     MyController(pmm::Host host, const pmm::Parameters& params);
//     // usage_json as in resource_estimator.h; answer [{"container_id", "task_id",
//     // "framework_id", "message"}, ...] or "" for no correction
//     std::string corrections(const std::string& usage_json);
//   };
//   static const pmm_qos_controller_vtable kTable = pmm::qos_controller_vtable<MyController>();
//
// Every exception becomes a status and message at the boundary (pmm::call).
#ifndef PYMESOS_MODULES_OVERSUBSCRIPTION_HPP
#define PYMESOS_MODULES_OVERSUBSCRIPTION_HPP

#include <string>

#include "pymesos_modules/module.hpp"
#include "pymesos_modules/qos_controller.h"
#include "pymesos_modules/resource_estimator.h"

namespace pmm {

template <class T>
pmm_resource_estimator_vtable resource_estimator_vtable() {
  pmm_resource_estimator_vtable table{};
  table.struct_size = sizeof(pmm_resource_estimator_vtable);
  table.oversubscribable = [](void* self, const char* usage, pmm_output* out,
                              pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      if (usage == nullptr) throw Error(PMM_ERR_INVALID, "usage_json is NULL");
      write(out, t.oversubscribable(std::string(usage)));
    });
  };
  return table;
}

template <class T>
pmm_qos_controller_vtable qos_controller_vtable() {
  pmm_qos_controller_vtable table{};
  table.struct_size = sizeof(pmm_qos_controller_vtable);
  table.corrections = [](void* self, const char* usage, pmm_output* out,
                         pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      if (usage == nullptr) throw Error(PMM_ERR_INVALID, "usage_json is NULL");
      write(out, t.corrections(std::string(usage)));
    });
  };
  return table;
}

}  // namespace pmm

#endif  // PYMESOS_MODULES_OVERSUBSCRIPTION_HPP
