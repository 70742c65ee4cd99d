// pybind11 binding of the DRF engine (filled in by the allocator work).
#include <pybind11/pybind11.h>

#include "pymesos_modules/module.h"

namespace py = pybind11;

PYBIND11_MODULE(_drf, m) {
  m.doc() = "Direct pybind11 binding of the native DRF allocation engine";
  m.attr("ABI_MAJOR") = static_cast<int>(PMM_ABI_MAJOR);
  m.attr("ABI_MINOR") = static_cast<int>(PMM_ABI_MINOR);
}
