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
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "pymesos_modules/allocator.h"

namespace pmm::drf {

// Resource vectors live inline (no heap allocation per vector in the hot loop).
constexpr uint32_t kMaxResources = 16;
// Handles are dense indices; 21 bits each lets a filter key pack into 64 bits.
constexpr uint32_t kMaxHandle = (1u << 21) - 1;
// The DRF order compares allocation counts in 43 bits: a count past this (a
// framework offered a million agents a second for a hundred days) sorts as
// if it were this, in the engine and the twin alike.
constexpr uint64_t kOrderCountLimit = (uint64_t(1) << 43) - 1;
constexpr double kEpsilon = 1e-9;

struct Vec {
  double v[kMaxResources] = {};
};

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

// Objects indexed by dense handle: O(1) lookup without hashing or tree walks
// (a std::map of 10k agents cost a third of a cycle in cache misses).
template <class T>
class Dense {
 public:
  T* find(uint32_t h) const { return h < slots_.size() ? slots_[h].get() : nullptr; }
  bool count(uint32_t h) const { return find(h) != nullptr; }
  T& at(uint32_t h) const { return *slots_.at(h); }
  T& emplace(uint32_t h, std::unique_ptr<T> value) {
    if (h >= slots_.size()) slots_.resize(size_t(h) + 1);
    slots_[h] = std::move(value);
    ++size_;
    return *slots_[h];
  }
  void erase(uint32_t h) {
    slots_[h].reset();
    --size_;
  }
  size_t size() const { return size_; }
  // Visits live objects in handle order.
  template <class F>
  void each(F&& f) const {
    for (const auto& slot : slots_)
      if (slot) f(*slot);
  }

 private:
  std::vector<std::unique_ptr<T>> slots_;
  size_t size_ = 0;
};

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

  const std::vector<pmm_offer_row>& rows() const { return rows_; }
  const std::vector<double>& values() const { return values_; }
  uint32_t resource_count() const { return rcount_; }
  Stats stats() const { return stats_; }
  uint64_t frameworks() const { return frameworks_.size(); }
  uint64_t agents() const { return agents_.size(); }
  uint64_t roles() const { return role_by_handle_.size(); }
  uint64_t active_filters() const { return filter_total_; }

  struct Role;
  struct Group;
  struct Leaf;
  struct Item;
  struct Framework;
  struct Agent;
  struct Filter;

 private:
  void ready(const char* call) const;
  void check_handle(const char* call, const char* what, uint32_t handle) const;
  Vec vector(const char* call, const char* what, const double* values, bool allow_inf = false) const;
  Framework& framework(const char* call, uint32_t handle);
  Agent& agent(const char* call, uint32_t handle);
  Role& role_node(const char* call, uint32_t handle);

  double share(const Vec& alloc) const;
  Role* node_for(const std::string& name);
  Leaf* leaf(Framework& fw, uint32_t role);
  void maybe_remove_leaf(Framework& fw, uint32_t role);
  // Ranks every role by name (the sets' tie-breaker); after a role is made.
  void rank_roles();
  void check_framework(const char* call, const FrameworkInput& info);

  struct Totals {
    Vec unreserved;
    std::vector<std::pair<uint32_t, Vec>> reservations;  // sorted by role
    Vec revocable;
  };
  Totals check_agent(const char* call, const AgentInput& info);
  void set_totals(const char* call, Agent& agent, const Totals& totals, bool commit);
  void change_total(const Agent& agent, int sign);

  void account(Leaf& leaf, const Vec& vector, int sign, bool count);
  void release(Agent& agent, size_t index, const Vec& vector);
  void add_filter(uint32_t framework, uint32_t role, uint32_t agent, const Vec& refused,
                  double expiry);
  // Drops one filter of a leaf (expiry, its agent removed); the leaf stays.
  void drop_filter(Leaf& leaf, std::unordered_map<uint32_t, Filter>::iterator it);
  // Drops every filter of a leaf (revive, unsubscribe, removal).
  void forget_filters(Leaf& leaf);
  void expire_filters(double now);

  void check_now(const char* call, double now) const;
  // The cycle over order_ (the visit's agents, distinct, in handle order);
  // `partial`: order_ may leave out active agents.
  void cycle(double now, bool partial);
  void rebuild_order();
  bool allocatable(const Vec& v) const;
  Framework* eligible(Leaf& leaf, Agent& agent);
  bool limit_room(Role& role, Vec& room) const;
  struct Pool {
    uint32_t pool;
    uint32_t flags;
    Vec amount;
  };
  size_t offer(Leaf& leaf, const Framework& fw, Agent& agent, const Vec* cap,
               bool with_unreserved, bool with_revocable, Pool* pools, Vec& total) const;
  bool filtered(Leaf& leaf, Agent& agent, const Vec& total) const;
  void give(Leaf& leaf, Agent& agent, const Pool* pools, size_t n);
  void apply_pending();
  bool agent_empty(const Agent& agent) const;
  Vec unsatisfied(const Role& role) const;
  void quota_roles(std::vector<Role*>& out);
  template <class Visit>
  bool walk(Role& node, Visit& visit, bool live_only);
  void refresh_live();
  bool everywhere_filtered_block(const Agent& agent) const;

  bool initialized_ = false;
  bool paused_ = false;
  bool dirty_ = true;
  // Leaf eligibility or everywhere-filtered state may have changed since
  // refresh_live() last ran; any_everywhere_ is its last answer.
  bool membership_dirty_ = true;
  bool any_everywhere_ = false;
  uint32_t rcount_ = 0;
  Options options_;
  std::vector<uint32_t> share_resources_;
  int gpu_index_ = -1;
  SplitMix64 rng_;
  Vec total_;
  std::unique_ptr<Role> root_;
  size_t role_nodes_ = 0;  // roles in the tree, with parents named only in paths
  std::unordered_map<uint32_t, Role*> role_by_handle_;
  Dense<Framework> frameworks_;
  Dense<Agent> agents_;
  uint64_t filter_total_ = 0;
  struct HeapEntry {
    double expiry;
    uint64_t seq;
    uint32_t framework, role, agent;
    bool operator>(const HeapEntry& o) const {
      return expiry != o.expiry ? expiry > o.expiry : seq > o.seq;
    }
  };
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<HeapEntry>> heap_;
  uint64_t filter_seq_ = 0;
  uint64_t cycle_seq_ = 0;  // tells this cycle's candidates apart (Agent::candidate_of)
  std::map<std::string, double> weights_;
  Stats stats_;

  // Reused across cycles: no allocation in the hot loop once warm.
  std::vector<pmm_offer_row> rows_;
  std::vector<double> values_;
  std::vector<uint32_t> order_;
  std::vector<std::pair<Leaf*, Vec>> pending_;
  std::vector<Role*> quota_scratch_;
};

}  // namespace pmm::drf

#endif  // PMM_DRF_ENGINE_HPP
