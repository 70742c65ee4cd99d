// The native hierarchical DRF engine: plain C++17, no Python, no ABI types
// beyond the flat output rows.  pymesos_modules/allocators/drf.py is its
// readable twin; both make the same decisions bit for bit (same arithmetic
// in the same order, same PRNG), see docs/allocator.md.
//
// Errors are thrown as pmm::Error(status, message) *before* any state
// changes; the module entry and the pybind11 binding convert them.
#ifndef PMM_DRF_ENGINE_HPP
#define PMM_DRF_ENGINE_HPP

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pymesos_modules/allocator.h"

namespace pmm::drf {

// Resource names an engine takes (vectors live inline, see Engine).
constexpr uint32_t kMaxResources = 16;
// Handles are dense indices; 21 bits each lets a filter key pack into 64 bits.
constexpr uint32_t kMaxHandle = (1u << 21) - 1;
// The DRF order compares allocation counts in 43 bits: a count past this (a
// framework offered a million agents a second for a hundred days) sorts as
// if it were this, in the engine and the twin alike.
constexpr uint64_t kOrderCountLimit = (uint64_t(1) << 43) - 1;
constexpr double kEpsilon = 1e-9;

struct Options {
  std::vector<std::string> resource_names;
  std::vector<std::vector<double>> min_allocatable;  // alternatives
  std::vector<bool> fairness_excluded;
  uint64_t random_seed = 0;
  double allocation_interval = 1.0;
  bool filter_gpu_resources = true;
};

struct AllocationInput {
  uint32_t framework, role, pool;
  bool revocable;
  const double* resources;
};

struct AgentInput {
  const double* unreserved = nullptr;
  std::vector<std::pair<uint32_t, const double*>> reservations;
  const double* revocable = nullptr;
  std::vector<AllocationInput> allocations;
  bool active = true;
};

struct FrameworkInput {
  std::vector<uint32_t> roles;
  std::vector<uint32_t> suppressed;
  uint32_t capabilities = 0;
  bool active = true;
};

struct Stats {
  uint64_t allocation_runs = 0, offers_made = 0, filtered_skips = 0;
  double last_allocation_ms = 0;
};

// SplitMix64 and the Fisher-Yates pass both engines use.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed = 0) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i-- > 1;) {
      size_t j = static_cast<size_t>(next() % (i + 1));
      std::swap(items[i], items[j]);
    }
  }

 private:
  uint64_t state_;
};

// The engine.  Resource vectors live inline in its records, sized at
// initialize() to the fewest of 4, 8 or 16 doubles that hold the declared
// resources: a cluster of cpus, mem, disk and gpus keeps an agent's hot
// fields in a cache line or two, which is what a cycle over tens of
// thousands of agents visited in random order pays for.
class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void initialize(const Options& options);
  void add_role(uint32_t role, const std::string& name);
  void add_framework(uint32_t framework, const FrameworkInput& info);
  void update_framework(uint32_t framework, const FrameworkInput& info);
  void remove_framework(uint32_t framework);
  void activate_framework(uint32_t framework, bool active);
  void add_agent(uint32_t agent, const AgentInput& info);
  void update_agent(uint32_t agent, const AgentInput& info);
  void remove_agent(uint32_t agent);
  void activate_agent(uint32_t agent, bool active);
  void recover(uint32_t framework, uint32_t agent, uint32_t role, uint32_t pool, bool revocable,
               const double* resources, double refuse_seconds, double now);
  void suppress(uint32_t framework, uint32_t role);
  void revive(uint32_t framework, uint32_t role);
  void update_weights(const std::vector<std::pair<uint32_t, double>>& weights);
  void update_quota(uint32_t role, const double* guarantees, const double* limits);
  void pause(bool paused);
  // Runs one cycle over every active agent; rows()/values() hold the result
  // until the next call.
  void allocate(double now);
  // Runs one cycle over the active agents among agents[0..count) (a set:
  // order and duplicates do not matter), deciding exactly as allocate() would
  // with the other agents absent from the visit; shares and quota headroom
  // still count the whole cluster.  An unknown handle fails before any state
  // changes.
  void allocate_agents(double now, const uint32_t* agents, size_t count);

  const std::vector<pmm_offer_row>& rows() const;
  const std::vector<double>& values() const;
  uint32_t resource_count() const;
  Stats stats() const;
  uint64_t frameworks() const;
  uint64_t agents() const;
  uint64_t roles() const;
  uint64_t active_filters() const;

 private:
  struct Impl;  // the engine of the chosen vector width
  std::unique_ptr<Impl> impl_;
  template <class F>
  decltype(auto) with(const char* call, F&& f) const;
};

}  // namespace pmm::drf
#endif  // PMM_DRF_ENGINE_HPP
