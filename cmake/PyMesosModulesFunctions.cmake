# pmm_add_module(<target> <sources...> [WERROR])
#
# Builds a pymesos-modules module library (lib<target>.so) from C or C++
# sources against the ABI headers.  Used by the project itself and by
# out-of-tree projects through find_package(PyMesosModules CONFIG REQUIRED).
#
# Only pmm_module_entry() is exported: everything else is hidden so two
# modules loaded into one process cannot interpose each other's symbols.
include_guard(GLOBAL)

function(pmm_add_module target)
  cmake_parse_arguments(PARSE_ARGV 1 PMM "WERROR" "" "")
  if(NOT PMM_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "pmm_add_module(${target}): no source files given")
  endif()
  add_library(${target} MODULE ${PMM_UNPARSED_ARGUMENTS})
  target_link_libraries(${target} PRIVATE PyMesosModules::headers)
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF
    CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang" OR CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra)
    if(PMM_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
    # Fail at link time, not at dlopen time, on a missing symbol; sanitizer
    # runtimes are provided by the host process, so skip it for those builds.
    if(NOT PMM_SANITIZE AND NOT CMAKE_SYSTEM_NAME STREQUAL "Darwin")
      target_link_options(${target} PRIVATE "LINKER:-z,defs")
    endif()
  endif()
endfunction()
