// Hierarchical DRF engine.  Every step mirrors pymesos_modules/allocators/drf.py:
// when changing one, change the other and run tests/allocator (the differential
// test compares them offer for offer).
#include "engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>
#include <variant>

#include "pymesos_modules/module.hpp"

namespace pmm::drf {

namespace {

constexpr uint32_t kInvalid = PMM_ERR_INVALID;
constexpr uint32_t kNotFound = PMM_ERR_NOT_FOUND;
constexpr uint32_t kExists = PMM_ERR_EXISTS;
constexpr uint32_t kState = PMM_ERR_STATE;
constexpr uint32_t kUnreserved = PMM_UNRESERVED_HANDLE;

[[noreturn]] void fail(uint32_t status, const std::string& message) {
  throw pmm::Error(static_cast<pmm_status>(status), message);
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

template <uint32_t N>
struct VecN {
  double v[N] = {};
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

// One engine of vector width N.  Its public calls are Engine's, which
// forwards to it, and documented there.
template <uint32_t N>
class Core {
 public:
  using Vec = VecN<N>;
  Core() = default;
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

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
  void allocate(double now);
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
  void check_handle(const char* call, const char* what, uint32_t handle) const;
  Vec vector(const char* call, const char* what, const double* values, bool allow_inf = false) const;
  Framework& framework(const char* call, uint32_t handle);
  Agent& agent(const char* call, uint32_t handle);
  Role& role_node(const char* call, uint32_t handle);

  double share(const Vec& alloc) const;
  Role* node_for(const std::string& name);
  Leaf* leaf(Framework& fw, uint32_t role);
  void maybe_remove_leaf(Framework& fw, uint32_t role);
  // Ranks every role by name (the sets' tie-breaker); rebuild_order() calls
  // it once after roles were made, before it fills the sets.
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
  void drop_filter(Leaf& leaf, typename std::unordered_map<uint32_t, Filter>::iterator it);
  // Drops every filter of a leaf (revive, unsubscribe, removal).
  void forget_filters(Leaf& leaf);
  void expire_filters(double now);

  void check_now(const char* call, double now) const;
  // The cycle over order_ (the visit's agents, distinct, in handle order);
  // `partial`: order_ may leave out active agents.
  void cycle(double now, bool partial);
  void rebuild_order();
  bool allocatable(const Vec& v) const;
  // Leaves in the eligible sets are active, subscribed and not suppressed
  // (refresh_live); only the agent can still rule one out: with GPU filtering
  // on, a GPU agent goes only to GPU_RESOURCES frameworks.
  bool gpu_excluded(const Leaf& leaf, const Agent& agent) const;
  bool limit_room(Role& role, Vec& room) const;
  struct Pool {
    uint32_t pool;
    uint32_t flags;
    Vec amount;
  };
  size_t offer(Leaf& leaf, Agent& agent, const Vec* cap,
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
  bool ranks_stale_ = false;  // a role was made since rank_roles() last ran
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
  // The visit's agents: pointers, not handles, so a visit in shuffled order
  // does not also look each one up (the shuffle's swaps depend on the count
  // alone, so the order is the same as over handles).
  std::vector<Agent*> order_;
  std::vector<uint32_t> candidates_;  // allocate_agents' handles, sorted
  std::vector<std::pair<Leaf*, Vec>> pending_;
  std::vector<Role*> quota_scratch_;
};


// An item's place in an ordered set: its whole sort key (dominant share,
// allocation count, tie-breaker) packed into one integer, beside the item.
// Comparing entries is then one branch-free integer compare that never
// touches the items, which are large and scattered (comparisons through
// them were a third of the cycle's cache misses with 6,000 frameworks).
// A share is a finite double >= +0 (share() starts from +0, weights are
// > 0), and such doubles order as their bit patterns; the count takes the
// next 43 bits (saturating at kOrderCountLimit) and the tie-breaker, a
// framework handle for leaves or a name rank for roles and groups, the last
// 21.  Keys are unique within a set, so the order is total.
using OrderKey = unsigned __int128;
struct ItemBase;
struct Entry {
  // Mutable so fix() can refresh a key in place when the order stays.
  mutable OrderKey key;
  ItemBase* item;
};
struct EntryLess {
  bool operator()(const Entry& a, const Entry& b) const { return a.key < b.key; }
};
using ItemSet = std::set<Entry, EntryLess>;

// What the ordered sets and the key helpers see of a role, group or leaf;
// the allocation vector, whose width depends on the engine, is in Item.
struct ItemBase {
  enum Type { kLeaf, kGroup, kRole } type;
  uint32_t tie = 0;  // framework handle (leaf), name rank (role, group)
  // Where the item sits in its parent's set: repositioning needs no search.
  ItemSet::iterator pos;
  uint64_t count = 0;
  double key_share = 0;
  uint64_t key_count = 0;
  double weight = 1.0;  // a role's weight; its group's is kept equal to it
  explicit ItemBase(Type t) : type(t) {}
};

template <uint32_t N>
struct Core<N>::Item : ItemBase {
  Vec alloc;
  explicit Item(Type t) : ItemBase(t) {}
};

template <uint32_t N>
struct Core<N>::Role : Item {
  std::string name;
  Role* parent = nullptr;
  bool has_handle = false;
  uint32_t handle = 0;
  std::map<std::string, std::unique_ptr<Role>> children;
  ItemSet order;
  std::unique_ptr<Group> group;
  bool has_guarantees = false, has_limits = false;
  Vec guarantees, limits;
  Role() : Item(ItemBase::kRole) {}
};

template <uint32_t N>
struct Core<N>::Group : Item {
  Role* role = nullptr;
  // The leaves that may be offered anything at all this cycle (framework
  // active, role subscribed and not suppressed) in DRF order: the walks visit
  // only these, so suppressed frameworks cost an agent visit nothing.  Other
  // leaves keep their keys current but sit in no set (one tree to re-key per
  // offer, not one per view).
  ItemSet eligible;
  // The eligible leaves that are not filtered on every agent, in the same
  // order: the walk uses it at agents where every such filter is known to
  // block, so a cluster where most frameworks declined everything costs them
  // nothing.  Kept only while some leaf is filtered everywhere (empty
  // otherwise, so a cluster without such filters re-keys one tree).
  ItemSet live;
  Group() : Item(ItemBase::kGroup) {}
};

// A refusal filter of one (framework, role) on one agent.
template <uint32_t N>
struct Core<N>::Filter {
  double expiry;
  uint64_t seq;  // tells the live filter from stale expiry-heap entries
  Vec refused;
};

template <uint32_t N>
struct alignas(64) Core<N>::Leaf : Item {
  // What a visit and the accounting after it read come first: with the
  // item's key and allocation they fill two cache lines (a cycle meets its
  // frameworks in DRF order, which is no order in memory).
  uint32_t framework = 0;
  bool subscribed = true;
  bool in_live = false, in_eligible = false;
  uint32_t capabilities = 0;  // the framework's, kept here for the visit
  Framework* fw = nullptr;
  Role* role = nullptr;
  ItemSet::iterator live_pos, eligible_pos;
  // Filters by agent handle.  Kept with their (framework, role), so revive
  // and removal touch only that leaf's filters, not every filter in the
  // cluster (which made set-up of a declined cluster quadratic).
  std::unordered_map<uint32_t, Filter> filters;
  Leaf() : Item(ItemBase::kLeaf) {}
};

template <uint32_t N>
struct Core<N>::Framework {
  uint32_t handle = 0;
  std::vector<uint32_t> roles;
  uint32_t capabilities = 0;
  std::set<uint32_t> suppressed;
  bool active = true;
  std::map<uint32_t, std::unique_ptr<Leaf>> leaves;
};

struct AllocKey {
  uint32_t framework, role, pool;
  bool revocable;
  bool operator<(const AllocKey& o) const {
    return std::tie(framework, role, pool, revocable) <
           std::tie(o.framework, o.role, o.pool, o.revocable);
  }
  bool operator==(const AllocKey& o) const {
    return framework == o.framework && role == o.role && pool == o.pool &&
           revocable == o.revocable;
  }
};

template <uint32_t N>
struct alignas(64) Core<N>::Agent {
  // Fields a cycle touches come first, so a visit costs few cache lines (see
  // prefetch() in allocate: agents are visited in random order).
  Vec free, free_revocable;
  std::vector<std::pair<uint32_t, Vec>> free_reserved;  // sorted by role
  std::vector<std::pair<AllocKey, Vec>> allocations;    // sorted by key
  uint32_t handle = 0;
  bool active = true;
  bool has_gpus = false;
  uint64_t filter_count = 0;  // filters on this agent
  Vec min_refused;            // lower bound of every filter's refused vector here
  Vec unreserved, revocable;
  std::vector<std::pair<uint32_t, Vec>> reservations;  // sorted by role
  uint64_t candidate_of = 0;  // the last subset cycle (cycle_seq_) that visited it

  Vec* reserved(uint32_t role) {
    auto it = std::lower_bound(free_reserved.begin(), free_reserved.end(), role,
                               [](const auto& e, uint32_t r) { return e.first < r; });
    return it != free_reserved.end() && it->first == role ? &it->second : nullptr;
  }
  Vec& reserved_or_add(uint32_t role) {
    auto it = std::lower_bound(free_reserved.begin(), free_reserved.end(), role,
                               [](const auto& e, uint32_t r) { return e.first < r; });
    if (it == free_reserved.end() || it->first != role) it = free_reserved.insert(it, {role, Vec{}});
    return it->second;
  }
  size_t find(const AllocKey& key) const {
    auto it = std::lower_bound(allocations.begin(), allocations.end(), key,
                               [](const auto& e, const AllocKey& k) { return e.first < k; });
    return it != allocations.end() && it->first == key ? size_t(it - allocations.begin())
                                                      : allocations.size();
  }
  Vec& allocation_or_add(const AllocKey& key) {
    auto it = std::lower_bound(allocations.begin(), allocations.end(), key,
                               [](const auto& e, const AllocKey& k) { return e.first < k; });
    if (it == allocations.end() || !(it->first == key)) it = allocations.insert(it, {key, Vec{}});
    return it->second;
  }
};

// ---------------------------------------------------------------- vector ops

namespace {
// Entries past the declared resources are zero in every vector (all are made
// zero-filled and every write stops at rcount_), so sums can run over the
// whole fixed width, which the compiler unrolls.
template <uint32_t N>
inline void add(VecN<N>& a, const VecN<N>& b, uint32_t) {
  for (uint32_t r = 0; r < N; ++r) a.v[r] += b.v[r];
}
template <uint32_t N>
inline void sub(VecN<N>& a, const VecN<N>& b, uint32_t) {
  for (uint32_t r = 0; r < N; ++r) a.v[r] -= b.v[r];
}
template <uint32_t N>
inline bool nonzero(const VecN<N>& a, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r)
    if (a.v[r] > 0.0) return true;
  return false;
}
template <uint32_t N>
inline bool subset(const VecN<N>& a, const VecN<N>& b, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r)
    if (!(a.v[r] <= b.v[r])) return false;
  return true;
}
}  // namespace

// ---------------------------------------------------------------- basics

template <uint32_t N>
void Core<N>::check_handle(const char* call, const char* what, uint32_t handle) const {
  if (handle > kMaxHandle)
    fail(kInvalid, std::string(call) + ": " + what + " handle " + std::to_string(handle) +
                       " is out of range (max " + std::to_string(kMaxHandle) + ")");
}

template <uint32_t N>
typename Core<N>::Vec Core<N>::vector(const char* call, const char* what, const double* values, bool allow_inf) const {
  if (values == nullptr) fail(kInvalid, std::string(call) + ": " + what + " is NULL");
  Vec out;
  for (uint32_t r = 0; r < rcount_; ++r) {
    double x = values[r];
    if (std::isnan(x) || x < 0 || (std::isinf(x) && !allow_inf))
      fail(kInvalid, std::string(call) + ": " + what + " must be finite and >= 0, got " + num(x) +
                         " for " + options_.resource_names[r]);
    out.v[r] = x;
  }
  return out;
}

template <uint32_t N>
typename Core<N>::Framework& Core<N>::framework(const char* call, uint32_t handle) {
  Framework* fw = frameworks_.find(handle);
  if (fw == nullptr)
    fail(kNotFound, std::string(call) + ": unknown framework " + std::to_string(handle));
  return *fw;
}

template <uint32_t N>
typename Core<N>::Agent& Core<N>::agent(const char* call, uint32_t handle) {
  Agent* a = agents_.find(handle);
  if (a == nullptr) fail(kNotFound, std::string(call) + ": unknown agent " + std::to_string(handle));
  return *a;
}

template <uint32_t N>
typename Core<N>::Role& Core<N>::role_node(const char* call, uint32_t handle) {
  auto it = role_by_handle_.find(handle);
  if (it == role_by_handle_.end())
    fail(kNotFound, std::string(call) + ": unknown role " + std::to_string(handle) +
                        " (declare it with add_role)");
  return *it->second;
}

template <uint32_t N>
double Core<N>::share(const Vec& alloc) const {
  double s = 0.0;
  for (uint32_t r : share_resources_) {
    double x = alloc.v[r] / total_.v[r];
    if (x > s) s = x;
  }
  return s;
}

// The sort key's first part: dominant share, divided by the weight for roles and
// groups (frameworks within a role are unweighted), as compute_key in the twin.
static double weighted(const ItemBase* item, double share_value) {
  return item->type == ItemBase::kLeaf ? share_value : share_value / item->weight;
}

// Only for items not currently inside a set: keys of set members change only
// through reposition().
static void compute_key(ItemBase* item, double share_value) {
  item->key_share = weighted(item, share_value);
  item->key_count = item->count;
}

static OrderKey pack(const ItemBase* item) {
  uint64_t bits;
  std::memcpy(&bits, &item->key_share, sizeof bits);
  uint64_t count = std::min<uint64_t>(item->key_count, kOrderCountLimit);
  return (OrderKey(bits) << 64) | (count << 21) | item->tie;
}

static ItemSet::iterator insert(ItemSet& set, ItemBase* item) {
  return set.insert(Entry{pack(item), item}).first;
}

static void set_insert(ItemSet& set, ItemBase* item, double share_value) {
  compute_key(item, share_value);
  item->pos = insert(set, item);
}

// Give an item its new key; false when the key did not change.  Safe while
// the item is in sets: they are not searched until fix() reinserts it.
static bool rekey(ItemBase* item, double share_value) {
  double new_share = weighted(item, share_value);
  if (new_share == item->key_share && item->count == item->key_count) return false;
  item->key_share = new_share;
  item->key_count = item->count;
  return true;
}

// Move a rekeyed item to its place without searching or allocating: the new
// key is checked against the neighbours (unchanged order is the common case
// for single-child sets), otherwise the node is extracted through its stored
// iterator and reinserted, at the end in O(1) when it now sorts last (the
// common case for the framework that just received an agent).
static void fix(ItemSet& set, ItemBase* item, ItemSet::iterator& pos) {
  const OrderKey key = pack(item);
  auto next = std::next(pos);
  bool after_prev = pos == set.begin() || std::prev(pos)->key < key;
  bool before_next = next == set.end() || key < next->key;
  if (after_prev && before_next) {
    pos->key = key;
    return;
  }
  auto node = set.extract(pos);
  node.value().key = key;
  if (!set.empty() && std::prev(set.end())->key < key)
    pos = set.insert(set.end(), std::move(node));
  else
    pos = set.insert(std::move(node)).position;
}

static void reposition(ItemSet& set, ItemBase* item, double share_value) {
  if (rekey(item, share_value)) fix(set, item, item->pos);
}

// ---------------------------------------------------------------- setup

template <uint32_t N>
void Core<N>::initialize(const Options& options) {
  const auto& names = options.resource_names;
  if (names.empty() || names.size() > kMaxResources)
    fail(kInvalid, "initialize: between 1 and " + std::to_string(kMaxResources) +
                       " resource names are supported, got " + std::to_string(names.size()));
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) fail(kInvalid, "initialize: resource names must not be empty");
    for (size_t j = 0; j < i; ++j)
      if (names[i] == names[j]) fail(kInvalid, "initialize: duplicate resource name " + names[i]);
  }
  if (!(options.allocation_interval >= 0) || !std::isfinite(options.allocation_interval))
    fail(kInvalid, "initialize: allocation_interval must be >= 0");
  for (const auto& alternative : options.min_allocatable)
    for (double x : alternative)
      if (!(x >= 0)) fail(kInvalid, "initialize: min_allocatable must be >= 0");
  options_ = options;
  rcount_ = static_cast<uint32_t>(names.size());
  options_.fairness_excluded.resize(rcount_, false);
  gpu_index_ = -1;
  for (uint32_t r = 0; r < rcount_; ++r)
    if (names[r] == "gpus") gpu_index_ = static_cast<int>(r);
  rng_ = SplitMix64(options.random_seed);
  root_ = std::make_unique<Role>();
  dirty_ = true;
}

template <uint32_t N>
typename Core<N>::Role* Core<N>::node_for(const std::string& name) {
  Role* node = root_.get();
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    std::string path = name.substr(0, slash);
    auto it = node->children.find(path);
    if (it == node->children.end()) {
      auto child = std::make_unique<Role>();
      child->name = path;
      child->parent = node;
      auto w = weights_.find(path);
      child->weight = w != weights_.end() ? w->second : 1.0;
      child->group = std::make_unique<Group>();
      child->group->role = child.get();
      child->group->weight = child->weight;
      Role* raw = child.get();
      node->children.emplace(path, std::move(child));
      ++role_nodes_;
      ranks_stale_ = dirty_ = true;  // rebuild_order() ranks the roles and fills the sets
      node = raw;
    } else {
      node = it->second.get();
    }
    if (slash == std::string::npos) return node;
    start = slash + 1;
  }
}

template <uint32_t N>
void Core<N>::rank_roles() {
  std::vector<Role*> all;
  std::vector<Role*> stack{root_.get()};
  while (!stack.empty()) {
    Role* node = stack.back();
    stack.pop_back();
    for (auto& entry : node->children) {
      all.push_back(entry.second.get());
      stack.push_back(entry.second.get());
    }
  }
  std::sort(all.begin(), all.end(), [](const Role* a, const Role* b) { return a->name < b->name; });
  for (uint32_t rank = 0; rank < all.size(); ++rank) {
    all[rank]->tie = rank;
    all[rank]->group->tie = rank;  // a group sorts by its role's name
  }
  ranks_stale_ = false;
}

template <uint32_t N>
void Core<N>::add_role(uint32_t role, const std::string& name) {
  check_handle("add_role", "role", role);
  if (role_by_handle_.count(role))
    fail(kExists, "add_role: role " + std::to_string(role) + " is already declared");
  bool ok = !name.empty() && name.find(' ') == std::string::npos;
  size_t start = 0;
  while (ok) {
    size_t slash = name.find('/', start);
    std::string part = name.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") ok = false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (!ok) fail(kInvalid, "add_role: invalid role name '" + name + "'");
  // Ranks must fit the sort key's 21-bit tie-breaker; a name adds at most one
  // node per path part.
  if (role_nodes_ + size_t(std::count(name.begin(), name.end(), '/')) + 1 > size_t(kMaxHandle) + 1)
    fail(kInvalid, "add_role: more than " + std::to_string(kMaxHandle + 1) + " roles");
  for (const auto& entry : role_by_handle_)
    if (entry.second->name == name)
      fail(kExists, "add_role: role name '" + name + "' is already declared");
  Role* node = node_for(name);
  node->has_handle = true;
  node->handle = role;
  role_by_handle_[role] = node;
}

// ---------------------------------------------------------------- frameworks

template <uint32_t N>
void Core<N>::check_framework(const char* call, const FrameworkInput& info) {
  if (info.roles.empty()) fail(kInvalid, std::string(call) + ": a framework needs at least one role");
  for (size_t i = 0; i < info.roles.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (info.roles[i] == info.roles[j])
        fail(kInvalid, std::string(call) + ": duplicate role " + std::to_string(info.roles[i]));
  for (uint32_t role : info.roles) role_node(call, role);
  for (uint32_t role : info.suppressed)
    if (std::find(info.roles.begin(), info.roles.end(), role) == info.roles.end())
      fail(kInvalid, std::string(call) + ": suppressed role " + std::to_string(role) +
                         " is not a framework role");
}

template <uint32_t N>
typename Core<N>::Leaf* Core<N>::leaf(Framework& fw, uint32_t role) {
  auto it = fw.leaves.find(role);
  if (it != fw.leaves.end()) return it->second.get();
  Role* node = role_by_handle_.at(role);
  auto created = std::make_unique<Leaf>();
  created->framework = fw.handle;
  created->fw = &fw;
  created->role = node;
  created->tie = fw.handle;
  created->capabilities = fw.capabilities;
  Leaf* raw = created.get();
  fw.leaves.emplace(role, std::move(created));
  compute_key(raw, share(raw->alloc));
  membership_dirty_ = true;
  return raw;
}

template <uint32_t N>
void Core<N>::maybe_remove_leaf(Framework& fw, uint32_t role) {
  auto it = fw.leaves.find(role);
  if (it == fw.leaves.end()) return;  // already gone (dropping its last filter removed it)
  Leaf* l = it->second.get();
  if (!l->subscribed && !nonzero(l->alloc, rcount_) && l->filters.empty()) {
    if (l->in_live) l->role->group->live.erase(l->live_pos);
    if (l->in_eligible) l->role->group->eligible.erase(l->eligible_pos);
    fw.leaves.erase(it);
    membership_dirty_ = true;
  }
}

template <uint32_t N>
void Core<N>::add_framework(uint32_t handle, const FrameworkInput& info) {
  check_handle("add_framework", "framework", handle);
  if (frameworks_.count(handle))
    fail(kExists, "add_framework: framework " + std::to_string(handle) + " already exists");
  check_framework("add_framework", info);
  auto fw = std::make_unique<Framework>();
  fw->handle = handle;
  fw->roles = info.roles;
  fw->capabilities = info.capabilities;
  fw->suppressed.insert(info.suppressed.begin(), info.suppressed.end());
  fw->active = info.active;
  Framework& ref = frameworks_.emplace(handle, std::move(fw));
  for (uint32_t role : ref.roles) leaf(ref, role);
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::update_framework(uint32_t handle, const FrameworkInput& info) {
  Framework& fw = framework("update_framework", handle);
  check_framework("update_framework", info);
  fw.roles = info.roles;
  fw.capabilities = info.capabilities;
  fw.suppressed.clear();
  fw.suppressed.insert(info.suppressed.begin(), info.suppressed.end());
  fw.active = info.active;
  std::vector<uint32_t> existing;
  for (auto& entry : fw.leaves) existing.push_back(entry.first);
  for (uint32_t role : existing) {
    Leaf* l = fw.leaves.at(role).get();
    l->subscribed = std::find(fw.roles.begin(), fw.roles.end(), role) != fw.roles.end();
    if (!l->subscribed) {
      forget_filters(*l);
      maybe_remove_leaf(fw, role);
    }
  }
  for (uint32_t role : fw.roles) leaf(fw, role)->subscribed = true;
  for (auto& entry : fw.leaves) entry.second->capabilities = fw.capabilities;
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::remove_framework(uint32_t handle) {
  Framework& fw = framework("remove_framework", handle);
  agents_.each([&](Agent& a) {
    for (size_t i = 0; i < a.allocations.size();) {
      if (a.allocations[i].first.framework == handle) {
        Vec copy = a.allocations[i].second;
        size_t before = a.allocations.size();
        release(a, i, copy);
        if (a.allocations.size() == before) ++i;
      } else {
        ++i;
      }
    }
  });
  for (auto& entry : fw.leaves) {
    Leaf* l = entry.second.get();
    forget_filters(*l);
    if (l->in_live) l->role->group->live.erase(l->live_pos);
    if (l->in_eligible) l->role->group->eligible.erase(l->eligible_pos);
  }
  frameworks_.erase(handle);
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::activate_framework(uint32_t handle, bool active) {
  const char* call = active ? "activate_framework" : "deactivate_framework";
  framework(call, handle).active = active;
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::suppress(uint32_t handle, uint32_t role) {
  Framework& fw = framework("suppress", handle);
  membership_dirty_ = true;
  if (role == PMM_ALL_ROLES_HANDLE) {
    fw.suppressed.insert(fw.roles.begin(), fw.roles.end());
    return;
  }
  if (std::find(fw.roles.begin(), fw.roles.end(), role) == fw.roles.end())
    fail(kInvalid, "suppress: framework " + std::to_string(handle) + " is not in role " +
                       std::to_string(role));
  fw.suppressed.insert(role);
}

template <uint32_t N>
void Core<N>::revive(uint32_t handle, uint32_t role) {
  Framework& fw = framework("revive", handle);
  if (role != PMM_ALL_ROLES_HANDLE &&
      std::find(fw.roles.begin(), fw.roles.end(), role) == fw.roles.end())
    fail(kInvalid, "revive: framework " + std::to_string(handle) + " is not in role " +
                       std::to_string(role));
  std::set<uint32_t> roles;
  if (role == PMM_ALL_ROLES_HANDLE)
    roles.insert(fw.roles.begin(), fw.roles.end());
  else
    roles.insert(role);
  for (uint32_t r : roles) fw.suppressed.erase(r);
  membership_dirty_ = true;
  for (uint32_t r : roles) {
    auto it = fw.leaves.find(r);
    if (it == fw.leaves.end()) continue;
    forget_filters(*it->second);
    maybe_remove_leaf(fw, r);
  }
}

// ---------------------------------------------------------------- agents

template <uint32_t N>
typename Core<N>::Totals Core<N>::check_agent(const char* call, const AgentInput& info) {
  Totals totals;
  totals.unreserved = vector(call, "unreserved", info.unreserved);
  auto reservations = info.reservations;
  std::sort(reservations.begin(), reservations.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < reservations.size(); ++i) {
    if (i > 0 && reservations[i].first == reservations[i - 1].first)
      fail(kInvalid, std::string(call) + ": duplicate reservation role " +
                         std::to_string(reservations[i].first));
    role_node(call, reservations[i].first);
    totals.reservations.emplace_back(reservations[i].first,
                                     vector(call, "reservation", reservations[i].second));
  }
  if (info.revocable != nullptr) totals.revocable = vector(call, "revocable", info.revocable);
  return totals;
}

template <uint32_t N>
void Core<N>::set_totals(const char* call, Agent& a, const Totals& totals, bool commit) {
  Vec free = totals.unreserved;
  Vec free_revocable = totals.revocable;
  std::vector<std::pair<uint32_t, Vec>> free_reserved = totals.reservations;
  auto reserved_or_add = [&](uint32_t role) -> Vec& {
    auto it = std::lower_bound(free_reserved.begin(), free_reserved.end(), role,
                               [](const auto& e, uint32_t r) { return e.first < r; });
    if (it == free_reserved.end() || it->first != role) it = free_reserved.insert(it, {role, Vec{}});
    return it->second;
  };
  for (const auto& entry : a.allocations) {
    const AllocKey& key = entry.first;
    Vec& target = key.revocable ? free_revocable
                  : key.pool == kUnreserved ? free
                                            : reserved_or_add(key.pool);
    sub(target, entry.second, rcount_);
  }
  auto negative = [&](const Vec& v) {
    for (uint32_t r = 0; r < rcount_; ++r)
      if (v.v[r] < -kEpsilon) return true;
    return false;
  };
  bool bad = negative(free) || negative(free_revocable);
  for (const auto& e : free_reserved) bad = bad || negative(e.second);
  if (bad)
    fail(kInvalid, std::string(call) + ": allocations exceed agent " + std::to_string(a.handle) +
                       "'s resources");
  if (!commit) return;
  a.unreserved = totals.unreserved;
  a.reservations = totals.reservations;
  a.revocable = totals.revocable;
  a.free = free;
  a.free_reserved = std::move(free_reserved);
  a.free_revocable = free_revocable;
  a.has_gpus = false;
  if (gpu_index_ >= 0) {
    int g = gpu_index_;
    a.has_gpus = a.unreserved.v[g] > 0 || a.revocable.v[g] > 0;
    for (const auto& e : a.reservations) a.has_gpus = a.has_gpus || e.second.v[g] > 0;
  }
}

template <uint32_t N>
void Core<N>::change_total(const Agent& a, int sign) {
  if (sign > 0) {
    add(total_, a.unreserved, rcount_);
    for (const auto& e : a.reservations) add(total_, e.second, rcount_);
  } else {
    sub(total_, a.unreserved, rcount_);
    for (const auto& e : a.reservations) sub(total_, e.second, rcount_);
  }
  share_resources_.clear();
  for (uint32_t r = 0; r < rcount_; ++r)
    if (!options_.fairness_excluded[r] && total_.v[r] > 0) share_resources_.push_back(r);
  dirty_ = true;
}

template <uint32_t N>
void Core<N>::add_agent(uint32_t handle, const AgentInput& info) {
  check_handle("add_agent", "agent", handle);
  if (agents_.count(handle))
    fail(kExists, "add_agent: agent " + std::to_string(handle) + " already exists");
  Totals totals = check_agent("add_agent", info);
  auto record = std::make_unique<Agent>();
  record->handle = handle;
  record->active = info.active;
  for (const auto& in : info.allocations) {
    framework("add_agent", in.framework);
    role_node("add_agent", in.role);
    if (in.pool != kUnreserved) role_node("add_agent", in.pool);
    Vec v = vector("add_agent", "allocation", in.resources);
    add(record->allocation_or_add(AllocKey{in.framework, in.role, in.pool, in.revocable}), v,
        rcount_);
  }
  set_totals("add_agent", *record, totals, true);
  Agent& a = agents_.emplace(handle, std::move(record));
  change_total(a, +1);
  membership_dirty_ = true;
  for (const auto& entry : a.allocations) {
    const AllocKey& key = entry.first;
    if (key.revocable) continue;
    Framework& fw = frameworks_.at(key.framework);
    Leaf* l = leaf(fw, key.role);
    l->subscribed = std::find(fw.roles.begin(), fw.roles.end(), key.role) != fw.roles.end();
    account(*l, entry.second, +1, true);
  }
}

template <uint32_t N>
void Core<N>::update_agent(uint32_t handle, const AgentInput& info) {
  Agent& a = agent("update_agent", handle);
  Totals totals = check_agent("update_agent", info);
  set_totals("update_agent", a, totals, false);  // validates only
  change_total(a, -1);
  set_totals("update_agent", a, totals, true);
  a.active = info.active;
  change_total(a, +1);
}

template <uint32_t N>
void Core<N>::remove_agent(uint32_t handle) {
  Agent& a = agent("remove_agent", handle);
  while (!a.allocations.empty()) {
    Vec copy = a.allocations.front().second;
    release(a, 0, copy);
  }
  // Filters live with their (framework, role): ask each one.
  std::vector<uint32_t> emptied;
  frameworks_.each([&](Framework& fw) {
    emptied.clear();
    for (auto& entry : fw.leaves) {
      Leaf& l = *entry.second;
      auto it = l.filters.find(handle);
      if (it == l.filters.end()) continue;
      drop_filter(l, it);
      if (l.filters.empty()) emptied.push_back(entry.first);
    }
    for (uint32_t role : emptied) maybe_remove_leaf(fw, role);
  });
  change_total(a, -1);
  agents_.erase(handle);
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::activate_agent(uint32_t handle, bool active) {
  const char* call = active ? "activate_agent" : "deactivate_agent";
  agent(call, handle).active = active;
}

// ---------------------------------------------------------------- accounting

template <uint32_t N>
void Core<N>::account(Leaf& l, const Vec& v, int sign, bool count) {
  Group* group = l.role->group.get();
  auto touch = [&](Item* item) {
    if (sign > 0)
      add(item->alloc, v, rcount_);
    else
      sub(item->alloc, v, rcount_);
    if (count) item->count += 1;
  };
  touch(&l);
  touch(group);
  for (Role* node = l.role; node != nullptr && node->parent != nullptr; node = node->parent)
    touch(node);
  if (dirty_) return;
  if (rekey(&l, share(l.alloc))) {
    if (l.in_eligible) fix(group->eligible, &l, l.eligible_pos);
    if (l.in_live) fix(group->live, &l, l.live_pos);
  }
  // An item alone in its set has no place to change, and a set only gains
  // members through rebuild_order(), which computes every key afresh: skip
  // those (a role without child roles, a cluster of one role).
  if (l.role->order.size() > 1) reposition(l.role->order, group, share(group->alloc));
  for (Role* node = l.role; node != nullptr && node->parent != nullptr; node = node->parent)
    if (node->parent->order.size() > 1) reposition(node->parent->order, node, share(node->alloc));
}

template <uint32_t N>
void Core<N>::release(Agent& a, size_t index, const Vec& v) {
  AllocKey key = a.allocations[index].first;
  Vec& allocation = a.allocations[index].second;
  for (uint32_t r = 0; r < rcount_; ++r) {
    allocation.v[r] -= v.v[r];
    if (allocation.v[r] < kEpsilon) allocation.v[r] = 0.0;
  }
  if (!nonzero(allocation, rcount_)) a.allocations.erase(a.allocations.begin() + index);
  if (key.revocable)
    add(a.free_revocable, v, rcount_);
  else if (key.pool == kUnreserved)
    add(a.free, v, rcount_);
  else
    add(*a.reserved(key.pool), v, rcount_);
  Framework* fw = frameworks_.find(key.framework);
  if (!key.revocable && fw != nullptr && fw->leaves.count(key.role)) {
    account(*fw->leaves.at(key.role), v, -1, false);
    maybe_remove_leaf(*fw, key.role);
  }
}

template <uint32_t N>
void Core<N>::recover(uint32_t fw_handle, uint32_t agent_handle, uint32_t role, uint32_t pool,
                     bool revocable, const double* resources, double refuse_seconds, double now) {
  const char* call = "recover_resources";
  Framework& fw = framework(call, fw_handle);
  Agent& a = agent(call, agent_handle);
  role_node(call, role);
  Vec v = vector(call, "resources", resources);
  if (std::isnan(refuse_seconds) || std::isnan(now))
    fail(kInvalid, "recover_resources: refuse_seconds and now must not be NaN");
  size_t index = a.find(AllocKey{fw_handle, role, pool, revocable});
  if (index == a.allocations.size())
    fail(kInvalid, "recover_resources: framework " + std::to_string(fw_handle) +
                       " holds nothing in role " + std::to_string(role) +
                       " from that pool on agent " + std::to_string(agent_handle));
  const Vec& held = a.allocations[index].second;
  for (uint32_t r = 0; r < rcount_; ++r)
    if (v.v[r] > held.v[r] + kEpsilon)
      fail(kInvalid, "recover_resources: recovering " + num(v.v[r]) + " of " +
                         options_.resource_names[r] + " but only " + num(held.v[r]) +
                         " is allocated");
  release(a, index, v);
  auto lit = fw.leaves.find(role);
  if (refuse_seconds > 0 && nonzero(v, rcount_) && lit != fw.leaves.end() &&
      lit->second->subscribed)
    add_filter(fw_handle, role, agent_handle, v,
               now + std::max(refuse_seconds, options_.allocation_interval));
}

// ---------------------------------------------------------------- filters

template <uint32_t N>
void Core<N>::add_filter(uint32_t fw, uint32_t role, uint32_t agent_handle, const Vec& refused,
                        double expiry) {
  Leaf& l = *frameworks_.at(fw).leaves.at(role);
  Agent& a = agents_.at(agent_handle);
  auto it = l.filters.find(agent_handle);
  if (it != l.filters.end() && it->second.expiry == expiry) {
    add(it->second.refused, refused, rcount_);
    return;
  }
  if (it == l.filters.end()) {
    it = l.filters.emplace(agent_handle, Filter{}).first;
    ++filter_total_;
    ++a.filter_count;
  }
  Filter& f = it->second;
  f.expiry = expiry;
  f.seq = ++filter_seq_;
  f.refused = refused;
  if (a.filter_count == 1) {
    a.min_refused = refused;
  } else {
    for (uint32_t r = 0; r < rcount_; ++r) a.min_refused.v[r] = std::min(a.min_refused.v[r], refused.v[r]);
  }
  heap_.push(HeapEntry{expiry, f.seq, fw, role, agent_handle});
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::drop_filter(Leaf& l, typename std::unordered_map<uint32_t, Filter>::iterator it) {
  // min_refused stays a valid lower bound when a filter goes, so it is kept.
  if (Agent* a = agents_.find(it->first)) a->filter_count -= 1;
  l.filters.erase(it);
  --filter_total_;
  membership_dirty_ = true;
}

template <uint32_t N>
void Core<N>::forget_filters(Leaf& l) {
  // min_refused stays a valid lower bound when a filter goes, so it is kept.
  for (const auto& entry : l.filters)
    if (Agent* a = agents_.find(entry.first)) a->filter_count -= 1;
  filter_total_ -= l.filters.size();
  if (!l.filters.empty()) membership_dirty_ = true;
  l.filters.clear();
}

template <uint32_t N>
void Core<N>::expire_filters(double now) {
  while (!heap_.empty() && heap_.top().expiry <= now) {
    HeapEntry top = heap_.top();
    heap_.pop();
    // A filter replaced or dropped since leaves a stale entry: seq tells.
    Framework* fw = frameworks_.find(top.framework);
    if (fw == nullptr) continue;
    auto lit = fw->leaves.find(top.role);
    if (lit == fw->leaves.end()) continue;
    auto& filters = lit->second->filters;
    auto it = filters.find(top.agent);
    if (it == filters.end() || it->second.seq != top.seq) continue;
    drop_filter(*lit->second, it);
    maybe_remove_leaf(*fw, top.role);
  }
}

// ---------------------------------------------------------------- weights, quota

template <uint32_t N>
void Core<N>::update_weights(const std::vector<std::pair<uint32_t, double>>& weights) {
  for (const auto& e : weights) {
    role_node("update_weights", e.first);
    if (!(e.second > 0) || !std::isfinite(e.second))
      fail(kInvalid, "update_weights: weight of role " + std::to_string(e.first) + " must be > 0");
  }
  for (const auto& e : weights) {
    Role& node = *role_by_handle_.at(e.first);
    weights_[node.name] = e.second;
    node.weight = e.second;
    node.group->weight = e.second;
  }
  dirty_ = true;
}

template <uint32_t N>
void Core<N>::update_quota(uint32_t role, const double* guarantees, const double* limits) {
  Role& node = role_node("update_quota", role);
  Vec g = vector("update_quota", "guarantees", guarantees);
  Vec l = vector("update_quota", "limits", limits, true);
  for (uint32_t r = 0; r < rcount_; ++r)
    if (g.v[r] > l.v[r]) fail(kInvalid, "update_quota: guarantees must not exceed limits");
  node.has_guarantees = nonzero(g, rcount_);
  node.guarantees = g;
  node.has_limits = false;
  for (uint32_t r = 0; r < rcount_; ++r) node.has_limits = node.has_limits || std::isfinite(l.v[r]);
  node.limits = l;
}

template <uint32_t N>
void Core<N>::pause(bool paused) {
  paused_ = paused;
}

// ---------------------------------------------------------------- the cycle

template <uint32_t N>
void Core<N>::rebuild_order() {
  if (ranks_stale_) rank_roles();
  std::vector<Role*> stack{root_.get()};
  while (!stack.empty()) {
    Role* node = stack.back();
    stack.pop_back();
    node->order.clear();
    if (node->group) {
      node->group->live.clear();
      node->group->eligible.clear();
      set_insert(node->order, node->group.get(), share(node->group->alloc));
    }
    for (auto& entry : node->children) {
      Role* child = entry.second.get();
      set_insert(node->order, child, share(child->alloc));
      stack.push_back(child);
    }
  }
  // Fresh keys for every leaf; refresh_live() puts them back into the sets.
  frameworks_.each([&](Framework& fw) {
    for (auto& entry : fw.leaves) {
      Leaf* l = entry.second.get();
      l->in_live = l->in_eligible = false;
      compute_key(l, share(l->alloc));
    }
  });
  dirty_ = false;
  membership_dirty_ = true;
}

template <uint32_t N>
bool Core<N>::allocatable(const Vec& v) const {
  if (!nonzero(v, rcount_)) return false;
  const auto& alternatives = options_.min_allocatable;
  for (const auto& alternative : alternatives) {
    bool ok = true;
    for (uint32_t r = 0; r < rcount_ && ok; ++r)
      if (alternative[r] > 0 && !(v.v[r] >= alternative[r])) ok = false;
    if (ok) return true;
  }
  return false;
}

template <uint32_t N>
bool Core<N>::gpu_excluded(const Leaf& l, const Agent& a) const {
  return a.has_gpus && options_.filter_gpu_resources && !(l.capabilities & PMM_CAP_GPU_RESOURCES);
}

template <uint32_t N>
bool Core<N>::limit_room(Role& role, Vec& room) const {
  bool limited = false;
  for (const Role* node = &role; node != nullptr && node->parent != nullptr; node = node->parent) {
    if (!node->has_limits) continue;
    for (uint32_t r = 0; r < rcount_; ++r) {
      double left = node->limits.v[r] - node->alloc.v[r];
      if (left < 0.0) left = 0.0;
      if (!limited) {
        for (uint32_t q = 0; q < rcount_; ++q) room.v[q] = std::numeric_limits<double>::infinity();
        limited = true;
      }
      if (left < room.v[r]) room.v[r] = left;
    }
  }
  return limited;
}

// Writes the pools `l` could take on `a` into `pools` (capped by `cap`, in
// the twin's order: unreserved, reservations up the role chain, revocable)
// and their sum into `total`; copies only the registered resources.
template <uint32_t N>
size_t Core<N>::offer(Leaf& l, Agent& a, const Vec* cap,
                     bool with_unreserved, bool with_revocable, Pool* pools, Vec& total) const {
  const uint32_t rc = rcount_;
  for (uint32_t r = 0; r < rc; ++r) total.v[r] = 0.0;
  Vec room;
  if (cap != nullptr)
    for (uint32_t r = 0; r < rc; ++r) room.v[r] = cap->v[r];
  size_t out = 0;
  auto take = [&](const Vec& source, uint32_t id, uint32_t flags) {
    Pool& p = pools[out];
    bool any = false;
    const bool capped = cap != nullptr && !(flags & PMM_OFFER_REVOCABLE);
    for (uint32_t r = 0; r < rc; ++r) {
      double x = source.v[r];
      if (capped) {
        if (x > room.v[r]) x = room.v[r];
        room.v[r] -= x;
      }
      p.amount.v[r] = x;
      any = any || x > 0.0;
    }
    if (!any) return;
    p.pool = id;
    p.flags = flags;
    add(total, p.amount, rc);
    ++out;
  };
  if (with_unreserved) take(a.free, kUnreserved, 0);
  if (!a.free_reserved.empty()) {
    size_t seen = 0;
    for (const Role* node = l.role; node != nullptr && node->parent != nullptr && seen < 62;
         node = node->parent) {
      if (!node->has_handle) continue;
      const Vec* reserved = a.reserved(node->handle);
      if (reserved == nullptr) continue;
      ++seen;
      take(*reserved, node->handle, 0);
    }
  }
  if (with_revocable && (l.capabilities & PMM_CAP_REVOCABLE_RESOURCES))
    take(a.free_revocable, kUnreserved, PMM_OFFER_REVOCABLE);
  return out;
}

template <uint32_t N>
bool Core<N>::filtered(Leaf& l, Agent& a, const Vec& total) const {
  if (l.filters.empty()) return false;
  auto it = l.filters.find(a.handle);
  return it != l.filters.end() && subset(total, it->second.refused, rcount_);
}

template <uint32_t N>
void Core<N>::give(Leaf& l, Agent& a, const Pool* pools, size_t n) {
  uint32_t role = l.role->handle;
  Vec shared;
  for (size_t i = 0; i < n; ++i) {
    const Pool& p = pools[i];
    rows_.push_back(pmm_offer_row{l.framework, a.handle, role, p.pool, p.flags, 0});
    values_.insert(values_.end(), p.amount.v, p.amount.v + rcount_);
    bool revocable = p.flags & PMM_OFFER_REVOCABLE;
    if (revocable)
      sub(a.free_revocable, p.amount, rcount_);
    else if (p.pool == kUnreserved)
      sub(a.free, p.amount, rcount_);
    else
      sub(*a.reserved(p.pool), p.amount, rcount_);
    add(a.allocation_or_add(AllocKey{l.framework, role, p.pool, revocable}), p.amount, rcount_);
    if (!revocable) add(shared, p.amount, rcount_);
  }
  pending_.emplace_back(&l, shared);
}

template <uint32_t N>
void Core<N>::apply_pending() {
  for (auto& entry : pending_) account(*entry.first, entry.second, +1, true);
  pending_.clear();
}

template <uint32_t N>
bool Core<N>::agent_empty(const Agent& a) const {
  if (nonzero(a.free, rcount_) || nonzero(a.free_revocable, rcount_)) return false;
  for (const auto& e : a.free_reserved)
    if (nonzero(e.second, rcount_)) return false;
  return true;
}

template <uint32_t N>
typename Core<N>::Vec Core<N>::unsatisfied(const Role& role) const {
  Vec need;
  for (uint32_t r = 0; r < rcount_; ++r)
    need.v[r] = std::max(role.guarantees.v[r] - role.alloc.v[r], 0.0);
  return need;
}

template <uint32_t N>
void Core<N>::quota_roles(std::vector<Role*>& out) {
  out.clear();
  for (auto& entry : role_by_handle_)
    if (entry.second->has_guarantees) out.push_back(entry.second);
  // Fresh keys without touching the cached ones (those order the role tree).
  auto key = [this](const Role* node) {
    return std::make_tuple(weighted(node, share(node->alloc)), node->count);
  };
  std::sort(out.begin(), out.end(), [&](const Role* a, const Role* b) {
    auto ka = key(a), kb = key(b);
    return ka != kb ? ka < kb : a->name < b->name;
  });
}

template <uint32_t N>
template <class Visit>
bool Core<N>::walk(Role& node, Visit& visit, bool live_only) {
  for (const Entry& entry : node.order) {
    if (entry.item->type == Item::kGroup) {
      Group* group = static_cast<Group*>(entry.item);
      const ItemSet& leaves = live_only ? group->live : group->eligible;
      for (auto it = leaves.begin(); it != leaves.end();) {
        Leaf* l = static_cast<Leaf*>(it->item);
        // The next leaf in order is the next one visited here, or at the
        // next agent when this one takes this agent and sinks: fetch its
        // two lines while this visit works (frameworks sit anywhere in
        // memory).
        if (++it != leaves.end()) {
          __builtin_prefetch(it->item);
          __builtin_prefetch(reinterpret_cast<const char*>(it->item) + 64);
        }
        if (!visit(*l)) return false;
      }
    } else if (!walk(*static_cast<Role*>(entry.item), visit, live_only)) {
      return false;
    }
  }
  return true;
}

namespace {

// Put `l` into or take it out of `set`, tracking membership in `in`.
void set_membership(ItemSet& set, ItemBase* l, ItemSet::iterator& pos, bool& in,
                    bool wanted) {
  if (wanted == in) return;
  if (wanted)
    pos = insert(set, l);
  else
    set.erase(pos);
  in = wanted;
}

}  // namespace

// Only after a call that can change a leaf's eligibility or whether it is
// filtered everywhere (membership_dirty_): a cycle after plain recovers, the
// steady state, costs nothing here.
template <uint32_t N>
void Core<N>::refresh_live() {
  if (!membership_dirty_) return;
  const uint64_t agents = agents_.size();
  bool any = false;
  frameworks_.each([&](Framework& fw) {
    for (auto& entry : fw.leaves) any = any || entry.second->filters.size() >= agents;
  });
  frameworks_.each([&](Framework& fw) {
    for (auto& entry : fw.leaves) {
      Leaf* l = entry.second.get();
      bool everywhere = l->filters.size() >= agents;
      bool eligible = fw.active && l->subscribed && !fw.suppressed.count(l->role->handle);
      set_membership(l->role->group->eligible, l, l->eligible_pos, l->in_eligible, eligible);
      set_membership(l->role->group->live, l, l->live_pos, l->in_live,
                     any && eligible && !everywhere);
    }
  });
  any_everywhere_ = any;
  membership_dirty_ = false;
}

template <uint32_t N>
bool Core<N>::everywhere_filtered_block(const Agent& a) const {
  if (a.filter_count == 0 || nonzero(a.free_revocable, rcount_)) return false;
  for (const auto& e : a.free_reserved)
    if (nonzero(e.second, rcount_)) return false;
  // Every (framework, role) filtered on all agents has a filter here whose
  // refused vector is >= min_refused >= what any of them could be offered.
  return subset(a.free, a.min_refused, rcount_);
}

template <uint32_t N>
void Core<N>::check_now(const char* call, double now) const {
  if (std::isnan(now)) fail(kInvalid, std::string(call) + ": now must not be NaN");
}

template <uint32_t N>
void Core<N>::allocate(double now) {
  check_now("allocate", now);
  order_.clear();
  agents_.each([&](Agent& a) {
    if (a.active) order_.push_back(&a);
  });
  cycle(now, false);
}

template <uint32_t N>
void Core<N>::allocate_agents(double now, const uint32_t* agents, size_t count) {
  const char* call = "allocate_agents";
  check_now(call, now);
  if (count > 0 && agents == nullptr) fail(kInvalid, std::string(call) + ": agents is NULL");
  for (size_t i = 0; i < count; ++i)
    if (!agents_.count(agents[i]))
      fail(kNotFound, std::string(call) + ": unknown agent " + std::to_string(agents[i]) +
                          " among the agents to allocate");
  // The candidates as a full cycle lists the cluster (distinct handles in
  // increasing order, inactive ones left out), so the shuffle that follows is
  // defined the same way for both, and for the Python twin.
  std::vector<uint32_t>& handles = candidates_;
  handles.clear();
  for (size_t i = 0; i < count; ++i)
    if (agents_.at(agents[i]).active) handles.push_back(agents[i]);
  std::sort(handles.begin(), handles.end());
  handles.erase(std::unique(handles.begin(), handles.end()), handles.end());
  order_.clear();
  for (uint32_t handle : handles) order_.push_back(&agents_.at(handle));
  cycle(now, true);
}

template <uint32_t N>
void Core<N>::cycle(double now, bool partial) {
  auto started = std::chrono::steady_clock::now();
  rows_.clear();
  values_.clear();
  if (paused_) return;
  expire_filters(now);
  if (dirty_) rebuild_order();
  refresh_live();
  const bool any_everywhere = any_everywhere_;
  rng_.shuffle(order_);
  Pool pools[64];

  // Stage 1: quota guarantees.
  bool any_unsatisfied = false;
  for (auto& entry : role_by_handle_)
    if (entry.second->has_guarantees && nonzero(unsatisfied(*entry.second), rcount_))
      any_unsatisfied = true;
  if (any_unsatisfied) {
    for (Agent* visited : order_) {
      Agent& a = *visited;
      quota_roles(quota_scratch_);
      for (Role* node : quota_scratch_) {
        Vec need = unsatisfied(*node);
        if (!nonzero(need, rcount_)) continue;
        for (const Entry& entry : node->group->eligible) {
          Leaf& l = *static_cast<Leaf*>(entry.item);
          if (gpu_excluded(l, a)) continue;
          Vec room;
          Vec cap = need;
          if (limit_room(*l.role, room))
            for (uint32_t r = 0; r < rcount_; ++r) cap.v[r] = std::min(need.v[r], room.v[r]);
          Vec total;
          size_t n = offer(l, a, &cap, true, false, pools, total);
          if (!allocatable(total)) continue;
          if (filtered(l, a, total)) {
            ++stats_.filtered_skips;
            continue;
          }
          give(l, a, pools, n);
          break;
        }
      }
      apply_pending();
    }
  }

  // Stage 2: fair share, holding back headroom for unsatisfied guarantees.
  Vec required;
  quota_roles(quota_scratch_);
  for (Role* node : quota_scratch_) add(required, unsatisfied(*node), rcount_);
  bool need_headroom = nonzero(required, rcount_);
  Vec headroom;
  if (need_headroom) {
    for (const Agent* a : order_) add(headroom, a->free, rcount_);
    if (partial) {
      // Headroom is what the whole cluster has unallocated (as Mesos), not
      // only the candidates: the other active agents follow, in handle order.
      ++cycle_seq_;
      for (Agent* a : order_) a->candidate_of = cycle_seq_;
      agents_.each([&](const Agent& a) {
        if (a.active && a.candidate_of != cycle_seq_) add(headroom, a.free, rcount_);
      });
    }
  }
  // Agents come in random order, so each visit starts with cache misses;
  // fetch the lines of agents a few visits ahead while working on this one.
  auto prefetch = [&](size_t k) {
    if (k >= order_.size()) return;
    const Agent* ahead = order_[k];
    __builtin_prefetch(&ahead->free);
    __builtin_prefetch(&ahead->free_revocable);
    __builtin_prefetch(&ahead->free_reserved);
  };
  auto prefetch_data = [&](size_t k) {
    if (k >= order_.size()) return;
    const Agent* ahead = order_[k];
    __builtin_prefetch(ahead->allocations.data());
  };
  for (size_t k = 0; k < std::min<size_t>(order_.size(), 8); ++k) prefetch(k);
  Vec room, total;  // scratch for every visit (a Vec zero-fills when made)
  for (size_t k = 0; k < order_.size(); ++k) {
    prefetch(k + 8);
    prefetch_data(k + 4);
    Agent& a = *order_[k];
    auto visit = [&](Leaf& l) -> bool {
      if (agent_empty(a)) return false;
      if (gpu_excluded(l, a)) return true;
      bool limited = limit_room(*l.role, room);
      bool with_unreserved = true;
      if (need_headroom) {
        bool exempt = false;
        for (const Role* node = l.role; node != nullptr && node->parent != nullptr;
             node = node->parent)
          if (node->has_guarantees && nonzero(unsatisfied(*node), rcount_)) exempt = true;
        if (!exempt) {
          Vec left;
          for (uint32_t r = 0; r < rcount_; ++r) left.v[r] = headroom.v[r] - a.free.v[r];
          with_unreserved = subset(required, left, rcount_);
        }
      }
      size_t n = offer(l, a, limited ? &room : nullptr, with_unreserved, true, pools, total);
      if (!allocatable(total)) return true;
      if (filtered(l, a, total)) {
        ++stats_.filtered_skips;
        return true;
      }
      if (need_headroom)
        for (size_t i = 0; i < n; ++i)
          if (pools[i].pool == kUnreserved && pools[i].flags == 0)
            sub(headroom, pools[i].amount, rcount_);
      give(l, a, pools, n);
      // An emptied agent ends the walk here rather than at the next leaf.
      return !agent_empty(a);
    };
    walk(*root_, visit, any_everywhere && everywhere_filtered_block(a));
    apply_pending();
  }

  ++stats_.allocation_runs;
  stats_.offers_made += rows_.size();
  stats_.last_allocation_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
}

// ---------------------------------------------------------------- the facade

struct Engine::Impl {
  std::variant<Core<4>, Core<8>, Core<16>> core;
  template <class T>
  explicit Impl(std::in_place_type_t<T> width) : core(width) {}
};

Engine::Engine() = default;
Engine::~Engine() = default;

template <class F>
decltype(auto) Engine::with(const char* call, F&& f) const {
  if (!impl_) fail(kState, std::string(call) + ": initialize() has not been called");
  return std::visit(std::forward<F>(f), impl_->core);
}

void Engine::initialize(const Options& options) {
  if (impl_) fail(kState, "initialize: initialize() was already called");
  const size_t n = options.resource_names.size();
  std::unique_ptr<Impl> made;
  if (n <= 4)
    made = std::make_unique<Impl>(std::in_place_type<Core<4>>);
  else if (n <= 8)
    made = std::make_unique<Impl>(std::in_place_type<Core<8>>);
  else
    made = std::make_unique<Impl>(std::in_place_type<Core<16>>);
  std::visit([&](auto& core) { core.initialize(options); }, made->core);
  impl_ = std::move(made);  // only once initialize() succeeded
}

void Engine::add_role(uint32_t role, const std::string& name) {
  with("add_role", [&](auto& core) { core.add_role(role, name); });
}
void Engine::add_framework(uint32_t framework, const FrameworkInput& info) {
  with("add_framework", [&](auto& core) { core.add_framework(framework, info); });
}
void Engine::update_framework(uint32_t framework, const FrameworkInput& info) {
  with("update_framework", [&](auto& core) { core.update_framework(framework, info); });
}
void Engine::remove_framework(uint32_t framework) {
  with("remove_framework", [&](auto& core) { core.remove_framework(framework); });
}
void Engine::activate_framework(uint32_t framework, bool active) {
  with(active ? "activate_framework" : "deactivate_framework",
       [&](auto& core) { core.activate_framework(framework, active); });
}
void Engine::add_agent(uint32_t agent, const AgentInput& info) {
  with("add_agent", [&](auto& core) { core.add_agent(agent, info); });
}
void Engine::update_agent(uint32_t agent, const AgentInput& info) {
  with("update_agent", [&](auto& core) { core.update_agent(agent, info); });
}
void Engine::remove_agent(uint32_t agent) {
  with("remove_agent", [&](auto& core) { core.remove_agent(agent); });
}
void Engine::activate_agent(uint32_t agent, bool active) {
  with(active ? "activate_agent" : "deactivate_agent",
       [&](auto& core) { core.activate_agent(agent, active); });
}
void Engine::recover(uint32_t framework, uint32_t agent, uint32_t role, uint32_t pool,
                     bool revocable, const double* resources, double refuse_seconds, double now) {
  with("recover_resources", [&](auto& core) {
    core.recover(framework, agent, role, pool, revocable, resources, refuse_seconds, now);
  });
}
void Engine::suppress(uint32_t framework, uint32_t role) {
  with("suppress", [&](auto& core) { core.suppress(framework, role); });
}
void Engine::revive(uint32_t framework, uint32_t role) {
  with("revive", [&](auto& core) { core.revive(framework, role); });
}
void Engine::update_weights(const std::vector<std::pair<uint32_t, double>>& weights) {
  with("update_weights", [&](auto& core) { core.update_weights(weights); });
}
void Engine::update_quota(uint32_t role, const double* guarantees, const double* limits) {
  with("update_quota", [&](auto& core) { core.update_quota(role, guarantees, limits); });
}
void Engine::pause(bool paused) {
  with(paused ? "pause" : "resume", [&](auto& core) { core.pause(paused); });
}
void Engine::allocate(double now) {
  with("allocate", [&](auto& core) { core.allocate(now); });
}
void Engine::allocate_agents(double now, const uint32_t* agents, size_t count) {
  with("allocate_agents", [&](auto& core) { core.allocate_agents(now, agents, count); });
}

// Before initialize() there is nothing to report: empty results, zero counts.
const std::vector<pmm_offer_row>& Engine::rows() const {
  static const std::vector<pmm_offer_row> none;
  if (!impl_) return none;
  return std::visit([](auto& core) -> const std::vector<pmm_offer_row>& { return core.rows(); },
                    impl_->core);
}
const std::vector<double>& Engine::values() const {
  static const std::vector<double> none;
  if (!impl_) return none;
  return std::visit([](auto& core) -> const std::vector<double>& { return core.values(); },
                    impl_->core);
}
uint32_t Engine::resource_count() const {
  return impl_ ? std::visit([](auto& core) { return core.resource_count(); }, impl_->core) : 0;
}
Stats Engine::stats() const {
  return impl_ ? std::visit([](auto& core) { return core.stats(); }, impl_->core) : Stats{};
}
uint64_t Engine::frameworks() const {
  return impl_ ? std::visit([](auto& core) { return core.frameworks(); }, impl_->core) : 0;
}
uint64_t Engine::agents() const {
  return impl_ ? std::visit([](auto& core) { return core.agents(); }, impl_->core) : 0;
}
uint64_t Engine::roles() const {
  return impl_ ? std::visit([](auto& core) { return core.roles(); }, impl_->core) : 0;
}
uint64_t Engine::active_filters() const {
  return impl_ ? std::visit([](auto& core) { return core.active_filters(); }, impl_->core) : 0;
}

}  // namespace pmm::drf
