// pymesos-modules: write a hook module as a C++ class.
//
//   class MyHook {
//    public:
//     MyHook(pmm::Host host, const pmm::Parameters& params);
//     // Any subset of these; the table entries of missing ones stay NULL, so
//     // the runtimes skip this hook at those moments.  Documents are Mesos v1
//     // JSON text (see hook.h for each answer's shape); return "" for "no change".
//     std::string master_launch_task_label_decorator(const std::string& task_info,
//                                                    const std::string& framework_info,
//                                                    const std::string& agent_id);
//     void master_agent_lost(const std::string& agent_id, const std::string& hostname);
//     std::string agent_run_task_label_decorator(const std::string& task_info,
//                                                const std::string& framework_info,
//                                                const std::string& agent_info);
//     std::string agent_task_environment_decorator(const std::string& task_info,
//                                                  const std::string& environment);
//     std::string agent_task_status_decorator(const std::string& framework_id,
//                                             const std::string& status);
//     std::string agent_resources_decorator(const std::string& agent_info);
//     std::string agent_attributes_decorator(const std::string& agent_info);
//   };
//   static const pmm_hook_vtable kTable = pmm::hook_vtable<MyHook>();
//   PMM_MODULE(MyHook, PMM_KIND_HOOK, "org_example_MyHook", ..., &kTable)
//
// Every exception becomes a status and message at the boundary (pmm::call);
// the runtime then logs the failure with the module's name and skips the hook.
#ifndef PYMESOS_MODULES_HOOK_HPP
#define PYMESOS_MODULES_HOOK_HPP

#include <string>
#include <type_traits>

#include "pymesos_modules/hook.h"
#include "pymesos_modules/module.hpp"

namespace pmm {

namespace detail {

// "Does T declare this hook method?" (a pointer-to-member of that name exists).
#define PMM_DETAIL_HOOK_DETECTOR(method)                                                 \
  template <class T, class = void>                                                       \
  struct has_##method : std::false_type {};                                              \
  template <class T>                                                                     \
  struct has_##method<T, std::void_t<decltype(&T::method)>> : std::true_type {};
PMM_DETAIL_HOOK_DETECTOR(master_launch_task_label_decorator)
PMM_DETAIL_HOOK_DETECTOR(master_agent_lost)
PMM_DETAIL_HOOK_DETECTOR(agent_run_task_label_decorator)
PMM_DETAIL_HOOK_DETECTOR(agent_task_environment_decorator)
PMM_DETAIL_HOOK_DETECTOR(agent_task_status_decorator)
PMM_DETAIL_HOOK_DETECTOR(agent_resources_decorator)
PMM_DETAIL_HOOK_DETECTOR(agent_attributes_decorator)
#undef PMM_DETAIL_HOOK_DETECTOR

// A NULL document is a host bug; say which argument rather than crash.
inline std::string text_arg(const char* value, const char* what) {
  if (value == nullptr) throw Error(PMM_ERR_INVALID, std::string(what) + " is NULL");
  return value;
}

}  // namespace detail

// The hook table for class T: an entry for each hook method T declares.
template <class T>
pmm_hook_vtable hook_vtable() {
  using detail::text_arg;
  pmm_hook_vtable table{};
  table.struct_size = sizeof(pmm_hook_vtable);
  if constexpr (detail::has_master_launch_task_label_decorator<T>::value) {
    table.master_launch_task_label_decorator = [](void* self, const char* task,
                                                  const char* framework, const char* agent_id,
                                                  pmm_output* out, pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        write(out, t.master_launch_task_label_decorator(text_arg(task, "task_info_json"),
                                                        text_arg(framework, "framework_info_json"),
                                                        text_arg(agent_id, "agent_id")));
      });
    };
  }
  if constexpr (detail::has_master_agent_lost<T>::value) {
    table.master_agent_lost = [](void* self, const char* agent_id, const char* hostname,
                                 pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        t.master_agent_lost(text_arg(agent_id, "agent_id"), text_arg(hostname, "hostname"));
      });
    };
  }
  if constexpr (detail::has_agent_run_task_label_decorator<T>::value) {
    table.agent_run_task_label_decorator = [](void* self, const char* task, const char* framework,
                                              const char* agent, pmm_output* out,
                                              pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        write(out, t.agent_run_task_label_decorator(text_arg(task, "task_info_json"),
                                                    text_arg(framework, "framework_info_json"),
                                                    text_arg(agent, "agent_info_json")));
      });
    };
  }
  if constexpr (detail::has_agent_task_environment_decorator<T>::value) {
    table.agent_task_environment_decorator = [](void* self, const char* task, const char* env,
                                                pmm_output* out, pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        write(out, t.agent_task_environment_decorator(text_arg(task, "task_info_json"),
                                                      text_arg(env, "environment_json")));
      });
    };
  }
  if constexpr (detail::has_agent_task_status_decorator<T>::value) {
    table.agent_task_status_decorator = [](void* self, const char* framework_id,
                                           const char* status, pmm_output* out,
                                           pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        write(out, t.agent_task_status_decorator(text_arg(framework_id, "framework_id"),
                                                 text_arg(status, "status_json")));
      });
    };
  }
  if constexpr (detail::has_agent_resources_decorator<T>::value) {
    table.agent_resources_decorator = [](void* self, const char* agent, pmm_output* out,
                                         pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        write(out, t.agent_resources_decorator(text_arg(agent, "agent_info_json")));
      });
    };
  }
  if constexpr (detail::has_agent_attributes_decorator<T>::value) {
    table.agent_attributes_decorator = [](void* self, const char* agent, pmm_output* out,
                                          pmm_error* error) noexcept {
      return call<T>(self, error, [&](T& t) {
        write(out, t.agent_attributes_decorator(text_arg(agent, "agent_info_json")));
      });
    };
  }
  return table;
}

}  // namespace pmm

#endif  // PYMESOS_MODULES_HOOK_HPP
