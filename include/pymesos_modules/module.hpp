// pymesos-modules: C++17 convenience layer over the C ABI in module.h.
//
// Write a module as a class and export it with one macro:
//
//   class Hello {
//    public:
//     Hello(pmm::Host host, const pmm::Parameters& params) : host_(host) {
//       host_.info("hello, " + params.get_or("greeting", "world"));
//     }
//    private:
//     pmm::Host host_;
//   };
//   PMM_MODULE(Hello, PMM_KIND_ANONYMOUS, "org_example_Hello", "1.0.0",
//              "Jane Doe", "jane@example.org", "Says hello when created", nullptr)
//
// The constructor is `create()` and the destructor `destroy()`.  Every C++
// exception thrown by module code is caught at the boundary and turned into a
// status and message (pmm::guard): none may unwind into the host.
#ifndef PYMESOS_MODULES_MODULE_HPP
#define PYMESOS_MODULES_MODULE_HPP

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "pymesos_modules/module.h"

namespace pmm {

// Throw this to choose the status code returned across the ABI; any other
// std::exception becomes PMM_ERR_GENERIC with its what() as the message.
class Error : public std::runtime_error {
 public:
  Error(pmm_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  explicit Error(const std::string& message) : Error(PMM_ERR_GENERIC, message) {}
  pmm_status status() const noexcept { return status_; }

 private:
  pmm_status status_;
};

// Run `body` and convert whatever it throws into a status + message.
template <class Body>
pmm_status guard(pmm_error* error, Body&& body) noexcept {
  try {
    if constexpr (std::is_same_v<decltype(body()), void>) {
      body();
      return PMM_OK;
    } else {
      return body();
    }
  } catch (const Error& e) {
    return pmm_error_set(error, e.status() == PMM_OK ? PMM_ERR_GENERIC : e.status(), "%s",
                         e.what());
  } catch (const std::bad_alloc&) {
    return pmm_error_set(error, PMM_ERR_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return pmm_error_set(error, PMM_ERR_GENERIC, "C++ exception: %s", e.what());
  } catch (...) {
    return pmm_error_set(error, PMM_ERR_GENERIC, "unknown C++ exception");
  }
}

// The host API table, with methods that tolerate an older host (a table
// without a given entry simply makes that call a no-op).
class Host {
 public:
  explicit Host(const pmm_host_api* api = nullptr) noexcept : api_(api) {}

  void log(int32_t level, const std::string& message) const noexcept {
    if (PMM_HOST_HAS(api_, log)) api_->log(api_->context, level, message.c_str());
  }
  void debug(const std::string& m) const noexcept { log(PMM_LOG_DEBUG, m); }
  void info(const std::string& m) const noexcept { log(PMM_LOG_INFO, m); }
  void warning(const std::string& m) const noexcept { log(PMM_LOG_WARNING, m); }
  void error(const std::string& m) const noexcept { log(PMM_LOG_ERROR, m); }

  uint64_t monotonic_ns() const noexcept {
    return PMM_HOST_HAS(api_, monotonic_ns) ? api_->monotonic_ns(api_->context) : 0;
  }
  void counter_add(const char* name, double delta) const noexcept {
    if (PMM_HOST_HAS(api_, counter_add)) api_->counter_add(api_->context, name, delta);
  }
  void gauge_set(const char* name, double value) const noexcept {
    if (PMM_HOST_HAS(api_, gauge_set)) api_->gauge_set(api_->context, name, value);
  }
  const pmm_host_api* raw() const noexcept { return api_; }

 private:
  const pmm_host_api* api_;
};

// Read-only view of the module's parameters.
class Parameters {
 public:
  explicit Parameters(const pmm_parameters* p = nullptr) noexcept : p_(p) {}

  bool has(const char* key) const noexcept { return pmm_parameter_get(p_, key) != nullptr; }
  std::string get_or(const char* key, const std::string& fallback) const {
    const char* v = pmm_parameter_get(p_, key);
    return v != nullptr ? std::string(v) : fallback;
  }
  // Throws pmm::Error(PMM_ERR_INVALID) naming the key when it is missing.
  std::string require(const char* key) const {
    const char* v = pmm_parameter_get(p_, key);
    if (v == nullptr) throw Error(PMM_ERR_INVALID, std::string("missing parameter '") + key + "'");
    return v;
  }
  // Parses a double, throwing a message that names the key and value.
  double get_double(const char* key, double fallback) const {
    const char* v = pmm_parameter_get(p_, key);
    if (v == nullptr) return fallback;
    try {
      size_t used = 0;
      double d = std::stod(v, &used);
      if (used != std::char_traits<char>::length(v)) throw std::invalid_argument(v);
      return d;
    } catch (const std::exception&) {
      throw Error(PMM_ERR_INVALID,
                  std::string("parameter '") + key + "' must be a number, got '" + v + "'");
    }
  }
  uint32_t size() const noexcept { return p_ != nullptr ? p_->count : 0; }
  const pmm_parameter& operator[](uint32_t i) const noexcept { return p_->items[i]; }
  // Throws pmm::Error(PMM_ERR_INVALID) naming a key not in `known`: a misspelt
  // parameter ("load_threshold_5m") would otherwise be silently ignored.
  void only(std::initializer_list<const char*> known) const {
    for (uint32_t i = 0; i < size(); ++i) {
      const std::string key = p_->items[i].key != nullptr ? p_->items[i].key : "";
      bool found = false;
      std::string list;
      for (const char* k : known) {
        found = found || key == k;
        list += (list.empty() ? "" : ", ") + std::string(k);
      }
      if (!found)
        throw Error(PMM_ERR_INVALID, std::string("unknown parameter '") + key +
                                         "' (this module takes: " + (list.empty() ? "none" : list) +
                                         ")");
    }
  }

 private:
  const pmm_parameters* p_;
};

namespace detail {

template <class T, class = void>
struct has_compatible : std::false_type {};
template <class T>
struct has_compatible<T, std::void_t<decltype(T::compatible(std::declval<const Host&>()))>>
    : std::true_type {};

template <class T>
pmm_status create(const pmm_host_api* host, const pmm_parameters* params, void** instance,
                  pmm_error* error) noexcept {
  return guard(error, [&] {
    if (instance == nullptr) throw Error(PMM_ERR_INVALID, "create: instance pointer is NULL");
    *instance = new T(Host(host), Parameters(params));
  });
}

template <class T>
void destroy(void* instance) noexcept {
  // A destructor that throws would terminate here (destructors are noexcept),
  // which is the right outcome: the host cannot recover a half-destroyed module.
  delete static_cast<T*>(instance);
}

// T::compatible(host) returns true, or false / throws with a reason.
template <class T>
pmm_status compatible(const pmm_host_api* host, pmm_error* error) noexcept {
  return guard(error, [&]() -> pmm_status {
    if (!T::compatible(Host(host)))
      return pmm_error_set(error, PMM_ERR_UNSUPPORTED, "module reports it cannot run on this host");
    return PMM_OK;
  });
}

template <class T>
constexpr auto compatible_fn() {
  if constexpr (has_compatible<T>::value) {
    return &compatible<T>;
  } else {
    return static_cast<pmm_status (*)(const pmm_host_api*, pmm_error*)>(nullptr);
  }
}

}  // namespace detail

// Append a document to a host output sink; an empty string writes nothing.
inline void write(pmm_output* out, const std::string& text) {
  if (text.empty()) return;
  if (out == nullptr || out->append == nullptr) throw Error(PMM_ERR_INVALID, "output is NULL");
  pmm_status status = out->append(out->context, text.data(), text.size());
  if (status != PMM_OK) throw Error(status, "the host could not take the output");
}

// A JSON string literal (quotes included) for `text`.
inline std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Call a method on an instance pointer with exception conversion; for
// writing kind vtables: `return pmm::call<Drf>(self, err, [&](Drf& d){...});`
template <class T, class Body>
pmm_status call(void* self, pmm_error* error, Body&& body) noexcept {
  if (self == nullptr) return pmm_error_set(error, PMM_ERR_INVALID, "instance is NULL");
  return guard(error, [&] { return body(*static_cast<T*>(self)); });
}

// A descriptor for class T.
template <class T>
constexpr pmm_module_descriptor describe(uint32_t kind, const char* name, const char* version,
                                         const char* author, const char* email,
                                         const char* description, const void* vtable) {
  return pmm_module_descriptor{PMM_DESCRIPTOR_HEADER(kind),
                               name,
                               version,
                               author,
                               email,
                               description,
                               detail::compatible_fn<T>(),
                               &detail::create<T>,
                               &detail::destroy<T>,
                               vtable};
}

}  // namespace pmm

// Export the listed descriptors (pointers) as this library's modules.
#define PMM_EXPORT_MODULES(...)                                                        \
  extern "C" PMM_EXPORT const pmm_module_descriptor* const* pmm_module_entry(          \
      uint32_t* count) {                                                               \
    static const pmm_module_descriptor* const pmm_modules_list[] = {__VA_ARGS__};      \
    if (count != nullptr)                                                              \
      *count = static_cast<uint32_t>(sizeof(pmm_modules_list) / sizeof(pmm_modules_list[0])); \
    return pmm_modules_list;                                                           \
  }

// One class, one module, one macro.
#define PMM_MODULE(Class, kind, name, version, author, email, description, vtable)    \
  static const pmm_module_descriptor pmm_descriptor_##Class =                          \
      pmm::describe<Class>(kind, name, version, author, email, description, vtable);   \
  PMM_EXPORT_MODULES(&pmm_descriptor_##Class)

#endif  // PYMESOS_MODULES_MODULE_HPP
