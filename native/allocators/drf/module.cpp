// The DRF engine as a pymesos-modules allocator module (libpmm_drf.so).
// Thin: translate the C structs into engine inputs; pmm::call turns every
// pmm::Error (and any other exception) into a status + message.
#include <cstdlib>
#include <string>

#include "bundled.h"
#include "engine.hpp"
#include "pymesos_modules/allocator.h"
#include "pymesos_modules/module.hpp"

namespace {

using pmm::drf::Engine;

// Module parameters override what the host passes to initialize():
//   random_seed=<uint64>, filter_gpu_resources=true|false
class DrfModule {
 public:
  DrfModule(pmm::Host host, const pmm::Parameters& params) : host_(host) {
    if (params.has("random_seed")) {
      std::string text = params.require("random_seed");
      char* end = nullptr;
      seed_ = std::strtoull(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0')
        throw pmm::Error(PMM_ERR_INVALID, "parameter 'random_seed' must be an unsigned integer, got '" + text + "'");
      has_seed_ = true;
    }
    if (params.has("filter_gpu_resources")) {
      std::string text = params.require("filter_gpu_resources");
      if (text != "true" && text != "false")
        throw pmm::Error(PMM_ERR_INVALID, "parameter 'filter_gpu_resources' must be true or false, got '" + text + "'");
      gpu_override_ = text == "true" ? 1 : 0;
    }
  }

  void initialize(const pmm_allocator_options* o) {
    if (o == nullptr || o->struct_size < sizeof(pmm_allocator_options))
      throw pmm::Error(PMM_ERR_INVALID, "initialize: options struct is missing or too small");
    pmm::drf::Options options;
    for (uint32_t i = 0; i < o->resource_count; ++i) {
      if (o->resource_names == nullptr || o->resource_names[i] == nullptr)
        throw pmm::Error(PMM_ERR_INVALID, "initialize: resource name " + std::to_string(i) + " is NULL");
      options.resource_names.emplace_back(o->resource_names[i]);
    }
    const uint32_t n = o->resource_count;
    if (o->min_allocatable_count == 0) {
      // Mesos' default: cpus:0.01 | mem:32.
      for (const auto& [name, amount] : {std::pair<const char*, double>{"cpus", 0.01}, {"mem", 32.0}}) {
        std::vector<double> alternative(n, 0.0);
        for (uint32_t r = 0; r < n; ++r)
          if (options.resource_names[r] == name) alternative[r] = amount;
        options.min_allocatable.push_back(alternative);
      }
    } else {
      if (o->min_allocatable == nullptr)
        throw pmm::Error(PMM_ERR_INVALID, "initialize: min_allocatable is NULL");
      for (uint32_t k = 0; k < o->min_allocatable_count; ++k)
        options.min_allocatable.emplace_back(o->min_allocatable + size_t(k) * n,
                                             o->min_allocatable + size_t(k + 1) * n);
    }
    options.fairness_excluded.assign(n, false);
    if (o->fairness_excluded != nullptr)
      for (uint32_t r = 0; r < n; ++r) options.fairness_excluded[r] = o->fairness_excluded[r] != 0;
    options.random_seed = has_seed_ ? seed_ : o->random_seed;
    options.allocation_interval = o->allocation_interval;
    options.filter_gpu_resources =
        gpu_override_ >= 0 ? gpu_override_ == 1 : o->filter_gpu_resources != 0;
    engine_.initialize(options);
    host_.debug("DRF engine initialized with " + std::to_string(n) + " resources");
  }

  static pmm::drf::FrameworkInput framework(const pmm_framework_info* info) {
    if (info == nullptr || info->struct_size < sizeof(pmm_framework_info))
      throw pmm::Error(PMM_ERR_INVALID, "framework info struct is missing or too small");
    if (info->role_count > 0 && info->roles == nullptr)
      throw pmm::Error(PMM_ERR_INVALID, "framework info: roles is NULL");
    pmm::drf::FrameworkInput in;
    in.roles.assign(info->roles, info->roles + info->role_count);
    for (uint32_t i = 0; i < info->role_count; ++i)
      if (info->suppressed != nullptr && info->suppressed[i]) in.suppressed.push_back(info->roles[i]);
    in.capabilities = info->capabilities;
    in.active = info->active != 0;
    return in;
  }

  pmm::drf::AgentInput agent(const pmm_agent_info* info) const {
    if (info == nullptr || info->struct_size < sizeof(pmm_agent_info))
      throw pmm::Error(PMM_ERR_INVALID, "agent info struct is missing or too small");
    const uint32_t n = engine_.resource_count();
    pmm::drf::AgentInput in;
    in.unreserved = info->unreserved;
    if (info->reservation_count > 0 && (info->reservation_roles == nullptr || info->reservations == nullptr))
      throw pmm::Error(PMM_ERR_INVALID, "agent info: reservations are NULL");
    for (uint32_t i = 0; i < info->reservation_count; ++i)
      in.reservations.emplace_back(info->reservation_roles[i], info->reservations + size_t(i) * n);
    in.revocable = info->revocable;
    if (info->allocation_count > 0 && info->allocations == nullptr)
      throw pmm::Error(PMM_ERR_INVALID, "agent info: allocations is NULL");
    for (uint32_t i = 0; i < info->allocation_count; ++i) {
      const pmm_allocation& a = info->allocations[i];
      in.allocations.push_back({a.framework, a.role, a.pool, (a.flags & PMM_OFFER_REVOCABLE) != 0, a.resources});
    }
    in.active = info->active != 0;
    return in;
  }

  Engine engine_;

 private:
  pmm::Host host_;
  bool has_seed_ = false;
  uint64_t seed_ = 0;
  int gpu_override_ = -1;
};

template <class Body>
pmm_status with(void* self, pmm_error* error, Body&& body) {
  return pmm::call<DrfModule>(self, error, std::forward<Body>(body));
}

// allocate() and allocate_agents(): check the host's result struct before the
// cycle runs (a failing call changes nothing), point it at the engine's
// buffers after.
template <class Run>
void cycle(DrfModule& m, const char* call, pmm_allocation_result* out, Run&& run) {
  if (out == nullptr || out->struct_size < sizeof(pmm_allocation_result))
    throw pmm::Error(PMM_ERR_INVALID, std::string(call) + ": result struct is missing or too small");
  run();
  out->row_count = static_cast<uint32_t>(m.engine_.rows().size());
  out->rows = m.engine_.rows().data();
  out->values = m.engine_.values().data();
}

const pmm_allocator_vtable kVtable = {
    sizeof(pmm_allocator_vtable),
    0,
    [](void* s, const pmm_allocator_options* o, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.initialize(o); });
    },
    [](void* s, pmm_handle role, const char* name, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) {
        if (name == nullptr) throw pmm::Error(PMM_ERR_INVALID, "add_role: name is NULL");
        m.engine_.add_role(role, name);
      });
    },
    [](void* s, pmm_handle fw, const pmm_framework_info* i, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.add_framework(fw, DrfModule::framework(i)); });
    },
    [](void* s, pmm_handle fw, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.remove_framework(fw); });
    },
    [](void* s, pmm_handle fw, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.activate_framework(fw, true); });
    },
    [](void* s, pmm_handle fw, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.activate_framework(fw, false); });
    },
    [](void* s, pmm_handle fw, const pmm_framework_info* i, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.update_framework(fw, DrfModule::framework(i)); });
    },
    [](void* s, pmm_handle a, const pmm_agent_info* i, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.add_agent(a, m.agent(i)); });
    },
    [](void* s, pmm_handle a, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.remove_agent(a); });
    },
    [](void* s, pmm_handle a, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.activate_agent(a, true); });
    },
    [](void* s, pmm_handle a, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.activate_agent(a, false); });
    },
    [](void* s, pmm_handle a, const pmm_agent_info* i, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.update_agent(a, m.agent(i)); });
    },
    [](void* s, pmm_handle fw, pmm_handle a, pmm_handle role, pmm_handle pool, uint32_t flags,
       const double* res, double refuse, double now, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) {
        m.engine_.recover(fw, a, role, pool, (flags & PMM_OFFER_REVOCABLE) != 0, res, refuse, now);
      });
    },
    [](void* s, pmm_handle fw, pmm_handle role, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.suppress(fw, role); });
    },
    [](void* s, pmm_handle fw, pmm_handle role, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.revive(fw, role); });
    },
    [](void* s, uint32_t count, const pmm_handle* roles, const double* weights, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) {
        if (count > 0 && (roles == nullptr || weights == nullptr))
          throw pmm::Error(PMM_ERR_INVALID, "update_weights: roles or weights is NULL");
        std::vector<std::pair<uint32_t, double>> pairs;
        for (uint32_t i = 0; i < count; ++i) pairs.emplace_back(roles[i], weights[i]);
        m.engine_.update_weights(pairs);
      });
    },
    [](void* s, pmm_handle role, const double* g, const double* l, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) { m.engine_.update_quota(role, g, l); });
    },
    [](void* s, pmm_error* e) { return with(s, e, [&](DrfModule& m) { m.engine_.pause(true); }); },
    [](void* s, pmm_error* e) { return with(s, e, [&](DrfModule& m) { m.engine_.pause(false); }); },
    [](void* s, double now, pmm_allocation_result* out, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) {
        cycle(m, "allocate", out, [&] { m.engine_.allocate(now); });
      });
    },
    [](void* s, pmm_allocator_stats* out, pmm_error* e) {
      return with(s, e, [&](DrfModule& m) {
        if (out == nullptr || out->struct_size < sizeof(pmm_allocator_stats))
          throw pmm::Error(PMM_ERR_INVALID, "stats: stats struct is missing or too small");
        auto st = m.engine_.stats();
        out->allocation_runs = st.allocation_runs;
        out->offers_made = st.offers_made;
        out->filtered_skips = st.filtered_skips;
        out->frameworks = m.engine_.frameworks();
        out->agents = m.engine_.agents();
        out->roles = m.engine_.roles();
        out->active_filters = m.engine_.active_filters();
        out->last_allocation_ms = st.last_allocation_ms;
      });
    },
    [](void* s, double now, uint32_t count, const pmm_handle* agents, pmm_allocation_result* out,
       pmm_error* e) {
      return with(s, e, [&](DrfModule& m) {
        cycle(m, "allocate_agents", out, [&] { m.engine_.allocate_agents(now, agents, count); });
      });
    },
};

}  // namespace

PMM_MODULE(DrfModule, PMM_KIND_ALLOCATOR, "org_pymesos_DRFAllocator", PMM_BUNDLED_VERSION,
           PMM_BUNDLED_AUTHOR, PMM_BUNDLED_EMAIL,
           "Hierarchical DRF allocator (Mesos semantics) with the allocation loop in C++", &kVtable)
