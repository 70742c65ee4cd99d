/* Who ships the modules under native/ and at which version: one place for
 * the descriptor fields every bundled module shares.  The version is the
 * project's own (CMake passes PMM_PROJECT_VERSION), so `inspect` shows which
 * release a bundled library came from. */
#ifndef PYMESOS_MODULES_BUNDLED_H
#define PYMESOS_MODULES_BUNDLED_H

#ifndef PMM_PROJECT_VERSION
#error "build bundled modules through native/CMakeLists.txt (link pmm_bundled)"
#endif

#define PMM_BUNDLED_VERSION PMM_PROJECT_VERSION
#define PMM_BUNDLED_AUTHOR "pymesos-modules developers"
#define PMM_BUNDLED_EMAIL "dev@pymesos-modules.invalid"

#ifdef __cplusplus
#include "pymesos_modules/module.hpp"

namespace pmm {

// pmm::describe<T> with the fields every bundled module shares filled in.
template <class T>
constexpr pmm_module_descriptor describe_bundled(uint32_t kind, const char* name,
                                                 const char* description, const void* vtable) {
  return describe<T>(kind, name, PMM_BUNDLED_VERSION, PMM_BUNDLED_AUTHOR, PMM_BUNDLED_EMAIL,
                     description, vtable);
}

}  // namespace pmm
#endif

#endif  // PYMESOS_MODULES_BUNDLED_H
