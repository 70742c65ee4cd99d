# find_package(PyMesosModules CONFIG REQUIRED) entry point.
# Layout (installed package and source tree alike): <root>/cmake/ holds this
# file, <root>/include/pymesos_modules/ the ABI headers.
get_filename_component(_pmm_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(PyMesosModules_INCLUDE_DIRS "${_pmm_root}/include")
if(NOT EXISTS "${PyMesosModules_INCLUDE_DIRS}/pymesos_modules/module.h")
  set(PyMesosModules_FOUND FALSE)
  set(PyMesosModules_NOT_FOUND_MESSAGE
      "pymesos_modules/module.h not found under ${PyMesosModules_INCLUDE_DIRS}")
  return()
endif()
if(NOT TARGET PyMesosModules::headers)
  add_library(PyMesosModules::headers INTERFACE IMPORTED)
  set_target_properties(PyMesosModules::headers PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${PyMesosModules_INCLUDE_DIRS}")
endif()
include("${CMAKE_CURRENT_LIST_DIR}/PyMesosModulesFunctions.cmake")
