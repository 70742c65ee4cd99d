// A first-fit allocator module: each active agent's free resources go, whole,
// to the lowest-numbered active framework that has not suppressed offers.
// No fairness, reservations or filters: a skeleton to start a policy from.
// The C++ class is the module; PMM_MODULE exports it, and pmm::call turns
// exceptions into status + message at the ABI.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "pymesos_modules/allocator.h"
#include "pymesos_modules/module.hpp"

namespace {

class FirstFit {
 public:
  FirstFit(pmm::Host host, const pmm::Parameters&) : host_(host) {}

  void initialize(const pmm_allocator_options* options) {
    resources_ = options->resource_count;
    host_.info("first fit ready for " + std::to_string(resources_) + " resources");
  }
  void add_framework(pmm_handle fw, const pmm_framework_info* info) {
    if (frameworks_.count(fw)) throw pmm::Error(PMM_ERR_EXISTS, "framework exists");
    frameworks_[fw] = Framework{info->active != 0, false, info->role_count ? info->roles[0] : 0};
  }
  void remove_framework(pmm_handle fw) { framework(fw); frameworks_.erase(fw); }
  void set_active(pmm_handle fw, bool active) { framework(fw).active = active; }
  void set_suppressed(pmm_handle fw, bool suppressed) { framework(fw).suppressed = suppressed; }
  void add_agent(pmm_handle agent, const pmm_agent_info* info) {
    if (agents_.count(agent)) throw pmm::Error(PMM_ERR_EXISTS, "agent exists");
    agents_[agent] = Agent{std::vector<double>(info->unreserved, info->unreserved + resources_),
                           info->active != 0};
  }
  void remove_agent(pmm_handle agent) { this->agent(agent); agents_.erase(agent); }
  void set_agent_active(pmm_handle agent, bool active) { this->agent(agent).active = active; }
  void recover(pmm_handle agent, const double* resources) {
    Agent& a = this->agent(agent);
    for (uint32_t r = 0; r < resources_; ++r) a.free[r] += resources[r];
  }
  void allocate(pmm_allocation_result* out) {
    rows_.clear();
    values_.clear();
    for (auto& [handle, a] : agents_) {
      bool any = false;
      for (double v : a.free) any = any || v > 0;
      if (!a.active || !any) continue;
      for (auto& [fw, f] : frameworks_) {
        if (!f.active || f.suppressed) continue;
        rows_.push_back(pmm_offer_row{fw, handle, f.role, PMM_UNRESERVED_HANDLE, 0, 0});
        values_.insert(values_.end(), a.free.begin(), a.free.end());
        a.free.assign(resources_, 0.0);
        break;
      }
    }
    out->row_count = static_cast<uint32_t>(rows_.size());
    out->rows = rows_.data();
    out->values = values_.data();
  }

 private:
  struct Framework {
    bool active, suppressed;
    pmm_handle role;
  };
  struct Agent {
    std::vector<double> free;
    bool active;
  };
  Framework& framework(pmm_handle fw) {
    auto it = frameworks_.find(fw);
    if (it == frameworks_.end()) throw pmm::Error(PMM_ERR_NOT_FOUND, "unknown framework " + std::to_string(fw));
    return it->second;
  }
  Agent& agent(pmm_handle agent) {
    auto it = agents_.find(agent);
    if (it == agents_.end()) throw pmm::Error(PMM_ERR_NOT_FOUND, "unknown agent " + std::to_string(agent));
    return it->second;
  }

  pmm::Host host_;
  uint32_t resources_ = 0;
  std::map<pmm_handle, Framework> frameworks_;
  std::map<pmm_handle, Agent> agents_;
  std::vector<pmm_offer_row> rows_;
  std::vector<double> values_;
};

template <class Body>
pmm_status with(void* self, pmm_error* error, Body&& body) {
  return pmm::call<FirstFit>(self, error, std::forward<Body>(body));
}

pmm_status unsupported(pmm_error* error, const char* call) {
  return pmm_error_set(error, PMM_OK, "%s is a no-op for first fit", call);
}

const pmm_allocator_vtable kVtable = {
    sizeof(pmm_allocator_vtable), 0,
    [](void* s, const pmm_allocator_options* o, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.initialize(o); }); },
    [](void*, pmm_handle, const char*, pmm_error* e) { return unsupported(e, "add_role"); },
    [](void* s, pmm_handle fw, const pmm_framework_info* i, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.add_framework(fw, i); }); },
    [](void* s, pmm_handle fw, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.remove_framework(fw); }); },
    [](void* s, pmm_handle fw, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.set_active(fw, true); }); },
    [](void* s, pmm_handle fw, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.set_active(fw, false); }); },
    [](void*, pmm_handle, const pmm_framework_info*, pmm_error* e) { return unsupported(e, "update_framework"); },
    [](void* s, pmm_handle a, const pmm_agent_info* i, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.add_agent(a, i); }); },
    [](void* s, pmm_handle a, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.remove_agent(a); }); },
    [](void* s, pmm_handle a, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.set_agent_active(a, true); }); },
    [](void* s, pmm_handle a, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.set_agent_active(a, false); }); },
    [](void*, pmm_handle, const pmm_agent_info*, pmm_error* e) { return unsupported(e, "update_agent"); },
    [](void* s, pmm_handle, pmm_handle a, pmm_handle, pmm_handle, uint32_t, const double* r, double, double, pmm_error* e) {
      return with(s, e, [&](FirstFit& f) { f.recover(a, r); });
    },
    [](void* s, pmm_handle fw, pmm_handle, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.set_suppressed(fw, true); }); },
    [](void* s, pmm_handle fw, pmm_handle, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.set_suppressed(fw, false); }); },
    [](void*, uint32_t, const pmm_handle*, const double*, pmm_error* e) { return unsupported(e, "update_weights"); },
    [](void*, pmm_handle, const double*, const double*, pmm_error* e) { return unsupported(e, "update_quota"); },
    [](void*, pmm_error* e) { return unsupported(e, "pause"); },
    [](void*, pmm_error* e) { return unsupported(e, "resume"); },
    [](void* s, double, pmm_allocation_result* out, pmm_error* e) { return with(s, e, [&](FirstFit& f) { f.allocate(out); }); },
    [](void*, pmm_allocator_stats*, pmm_error* e) { return unsupported(e, "stats"); },
    // allocate_agents is optional: without it the host runs allocate() over every agent
    // when it asks for a cycle over a few.
    nullptr,
};

}  // namespace

PMM_MODULE(FirstFit, PMM_KIND_ALLOCATOR, "org_example_FirstFit", "0.1.0", "Example Author",
           "author@example.org", "First-fit allocator: a skeleton for your own policy", &kVtable)
