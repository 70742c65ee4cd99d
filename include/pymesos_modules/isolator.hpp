// pymesos-modules: write an isolator as a C++ class.
//
//   class MyIsolator {
//    public:
//     MyIsolator(pmm::Host host, const pmm::Parameters& params);
//     std::string prepare(const pmm::ContainerConfig& config);      // launch-info JSON or ""
//     void isolate(const std::string& container_id, int64_t pid);
//     void update(const std::string& container_id, const pmm::Resources& resources);
//     void usage(const std::string& container_id, pmm_resource_statistics& statistics);
//     std::string watch(const std::string& container_id, bool exited, int wait_status);
//     void cleanup(const std::string& container_id);
//   };
//   static const pmm_isolator_vtable kTable = pmm::isolator_vtable<MyIsolator>();
//   PMM_MODULE(MyIsolator, PMM_KIND_ISOLATOR, "org_example_MyIsolator", ..., &kTable)
//
// Throw pmm::Error(PMM_ERR_NOT_FOUND, ...) for an unknown container; every
// exception becomes a status and message at the boundary (pmm::call).
#ifndef PYMESOS_MODULES_ISOLATOR_HPP
#define PYMESOS_MODULES_ISOLATOR_HPP

#include <map>
#include <string>

#include "pymesos_modules/isolator.h"
#include "pymesos_modules/module.hpp"

namespace pmm {

// Scalar resources by name (cpus, mem in MB, ...).
using Resources = std::map<std::string, double>;

inline Resources resources_from(uint32_t count, const char* const* names, const double* values) {
  Resources out;
  for (uint32_t i = 0; i < count; ++i) {
    if (names == nullptr || values == nullptr || names[i] == nullptr)
      throw Error(PMM_ERR_INVALID, "resource arrays are NULL or hold a NULL name");
    out[names[i]] = values[i];
  }
  return out;
}

inline std::string string_or_empty(const char* s) { return s != nullptr ? s : ""; }

// pmm_container_config as C++ values.
struct ContainerConfig {
  std::string container_id, task_id, framework_id, sandbox, user, task_json;
  bool has_user = false;
  Resources resources;

  explicit ContainerConfig(const pmm_container_config& c)
      : container_id(string_or_empty(c.container_id)),
        task_id(string_or_empty(c.task_id)),
        framework_id(string_or_empty(c.framework_id)),
        sandbox(string_or_empty(c.sandbox)),
        user(string_or_empty(c.user)),
        task_json(string_or_empty(c.task_json)),
        has_user(c.user != nullptr),
        resources(resources_from(c.resource_count, c.resource_names, c.resource_values)) {
    if (container_id.empty()) throw Error(PMM_ERR_INVALID, "container_id is empty");
  }
};

inline std::string id_or_throw(const char* container_id) {
  if (container_id == nullptr || *container_id == '\0')
    throw Error(PMM_ERR_INVALID, "container_id is NULL or empty");
  return container_id;
}

template <class T>
pmm_isolator_vtable isolator_vtable() {
  pmm_isolator_vtable table{};
  table.struct_size = sizeof(pmm_isolator_vtable);
  table.prepare = [](void* self, const pmm_container_config* config, pmm_output* out,
                     pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      if (config == nullptr) throw Error(PMM_ERR_INVALID, "config is NULL");
      write(out, t.prepare(ContainerConfig(*config)));
    });
  };
  table.isolate = [](void* self, const char* id, int64_t pid, pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      if (pid <= 0) throw Error(PMM_ERR_INVALID, "pid must be > 0, got " + std::to_string(pid));
      t.isolate(id_or_throw(id), pid);
    });
  };
  table.update = [](void* self, const char* id, uint32_t count, const char* const* names,
                    const double* values, pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      t.update(id_or_throw(id), resources_from(count, names, values));
    });
  };
  table.usage = [](void* self, const char* id, pmm_resource_statistics* statistics,
                   pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      if (statistics == nullptr || statistics->struct_size < sizeof(pmm_resource_statistics))
        throw Error(PMM_ERR_INVALID, "statistics is NULL or from an older host");
      t.usage(id_or_throw(id), *statistics);
    });
  };
  table.watch = [](void* self, const char* id, int32_t exited, int32_t wait_status,
                   pmm_output* out, pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) {
      write(out, t.watch(id_or_throw(id), exited != 0, wait_status));
    });
  };
  table.cleanup = [](void* self, const char* id, pmm_error* error) noexcept {
    return call<T>(self, error, [&](T& t) { t.cleanup(id_or_throw(id)); });
  };
  return table;
}

}  // namespace pmm

#endif  // PYMESOS_MODULES_ISOLATOR_HPP
