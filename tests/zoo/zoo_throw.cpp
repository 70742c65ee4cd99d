// A C++ module whose constructor throws: module.hpp must turn the exception
// into a status + message instead of letting it unwind into the host.
#include <stdexcept>

#include "pymesos_modules/module.hpp"

class Thrower {
 public:
  Thrower(pmm::Host, const pmm::Parameters&) {
    throw std::runtime_error("zoo thrower: constructor exploded");
  }
};

PMM_MODULE(Thrower, PMM_KIND_ANONYMOUS, "zoo_Thrower", "0.1.0", "Zoo Keeper",
           "zoo@example.invalid", "Throws from create()", nullptr)
