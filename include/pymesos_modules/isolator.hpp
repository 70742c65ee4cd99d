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
//     // optional: the containers a restarted agent takes over (orphans: the rest)
//     void recover(const std::vector<std::string>& container_ids);
//   };
//   static const pmm_isolator_vtable kTable = pmm::isolator_vtable<MyIsolator>();
//   PMM_MODULE(MyIsolator, PMM_KIND_ISOLATOR, "org_example_MyIsolator", ..., &kTable)
//
// Throw pmm::Error(PMM_ERR_NOT_FOUND, ...) for an unknown container; every
// exception becomes a status and message at the boundary (pmm::call).
#ifndef PYMESOS_MODULES_ISOLATOR_HPP
#define PYMESOS_MODULES_ISOLATOR_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

namespace detail {
template <class T, class = void>
struct has_recover : std::false_type {};
template <class T>
struct has_recover<T, std::void_t<decltype(std::declval<T&>().recover(
                          std::declval<const std::vector<std::string>&>()))>> : std::true_type {};
}  // namespace detail

// The statistics fields of ABI 1.0 (up to `threads`): a host passes at least these.
constexpr size_t kStatisticsMinSize =
    offsetof(pmm_resource_statistics, threads) + sizeof(double);

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
      if (statistics == nullptr || statistics->struct_size < kStatisticsMinSize)
        throw Error(PMM_ERR_INVALID, "statistics is NULL or smaller than ABI 1.0's struct");
      // The module fills a whole struct of this build; the host gets the
      // fields its struct_size holds (an older host knows fewer of them).
      size_t size = std::min<size_t>(statistics->struct_size, sizeof(pmm_resource_statistics));
      pmm_resource_statistics local;
      std::memcpy(&local, statistics, size);
      for (size_t at = size; at + sizeof(double) <= sizeof local; at += sizeof(double)) {
        double nan = NAN;
        std::memcpy(reinterpret_cast<char*>(&local) + at, &nan, sizeof nan);
      }
      local.struct_size = sizeof local;
      t.usage(id_or_throw(id), local);
      local.struct_size = statistics->struct_size;
      std::memcpy(statistics, &local, size);
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
  if constexpr (detail::has_recover<T>::value) {
    table.recover = [](void* self, uint32_t count, const char* const* ids,
                       pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        if (count > 0 && ids == nullptr) throw Error(PMM_ERR_INVALID, "container_ids is NULL");
        std::vector<std::string> out;
        for (uint32_t i = 0; i < count; ++i) out.push_back(id_or_throw(ids[i]));
        t.recover(out);
      });
    };
  }
  return table;
}

}  // namespace pmm

#endif  // PYMESOS_MODULES_ISOLATOR_HPP
