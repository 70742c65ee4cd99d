// Hierarchical DRF engine.  Every step mirrors pymesos_modules/allocators/drf.py:
// when changing one, change the other and run tests/allocator (the differential
// test compares them offer for offer).
#include "engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

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
struct Entry {
  // Mutable so fix() can refresh a key in place when the order stays.
  mutable OrderKey key;
  Engine::Item* item;
};
struct EntryLess {
  bool operator()(const Entry& a, const Entry& b) const { return a.key < b.key; }
};
using ItemSet = std::set<Entry, EntryLess>;

struct Engine::Item {
  enum Type { kLeaf, kGroup, kRole } type;
  // Where the item sits in its parent's set: repositioning needs no search.
  ItemSet::iterator pos;
  uint32_t tie = 0;  // framework handle (leaf), name rank (role, group)
  Vec alloc;
  uint64_t count = 0;
  double key_share = 0;
  uint64_t key_count = 0;
  double weight = 1.0;  // used by roles (a group uses its role's)
  explicit Item(Type t) : type(t) {}
};

struct Engine::Role : Item {
  std::string name;
  Role* parent = nullptr;
  bool has_handle = false;
  uint32_t handle = 0;
  std::map<std::string, std::unique_ptr<Role>> children;
  ItemSet order;
  std::unique_ptr<Group> group;
  bool has_guarantees = false, has_limits = false;
  Vec guarantees, limits;
  Role() : Item(kRole) {}
};

struct Engine::Group : Item {
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
  Group() : Item(kGroup) {}
};

// A refusal filter of one (framework, role) on one agent.
struct Engine::Filter {
  double expiry;
  uint64_t seq;  // tells the live filter from stale expiry-heap entries
  Vec refused;
};

struct Engine::Leaf : Item {
  uint32_t framework = 0;
  Framework* fw = nullptr;
  Role* role = nullptr;
  bool subscribed = true;
  // Filters by agent handle.  Kept with their (framework, role), so revive
  // and removal touch only that leaf's filters, not every filter in the
  // cluster (which made set-up of a declined cluster quadratic).
  std::unordered_map<uint32_t, Filter> filters;
  bool in_live = false, in_eligible = false;
  ItemSet::iterator live_pos, eligible_pos;
  Leaf() : Item(kLeaf) {}
};

struct Engine::Framework {
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

struct Engine::Agent {
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
inline void add(Vec& a, const Vec& b, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r) a.v[r] += b.v[r];
}
inline void sub(Vec& a, const Vec& b, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r) a.v[r] -= b.v[r];
}
inline bool nonzero(const Vec& a, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r)
    if (a.v[r] > 0.0) return true;
  return false;
}
inline bool subset(const Vec& a, const Vec& b, uint32_t n) {
  for (uint32_t r = 0; r < n; ++r)
    if (!(a.v[r] <= b.v[r])) return false;
  return true;
}
}  // namespace

// ---------------------------------------------------------------- basics

Engine::Engine() = default;
Engine::~Engine() = default;

void Engine::ready(const char* call) const {
  if (!initialized_) fail(kState, std::string(call) + ": initialize() has not been called");
}

void Engine::check_handle(const char* call, const char* what, uint32_t handle) const {
  if (handle > kMaxHandle)
    fail(kInvalid, std::string(call) + ": " + what + " handle " + std::to_string(handle) +
                       " is out of range (max " + std::to_string(kMaxHandle) + ")");
}

Vec Engine::vector(const char* call, const char* what, const double* values, bool allow_inf) const {
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

Engine::Framework& Engine::framework(const char* call, uint32_t handle) {
  Framework* fw = frameworks_.find(handle);
  if (fw == nullptr)
    fail(kNotFound, std::string(call) + ": unknown framework " + std::to_string(handle));
  return *fw;
}

Engine::Agent& Engine::agent(const char* call, uint32_t handle) {
  Agent* a = agents_.find(handle);
  if (a == nullptr) fail(kNotFound, std::string(call) + ": unknown agent " + std::to_string(handle));
  return *a;
}

Engine::Role& Engine::role_node(const char* call, uint32_t handle) {
  auto it = role_by_handle_.find(handle);
  if (it == role_by_handle_.end())
    fail(kNotFound, std::string(call) + ": unknown role " + std::to_string(handle) +
                        " (declare it with add_role)");
  return *it->second;
}

double Engine::share(const Vec& alloc) const {
  double s = 0.0;
  for (uint32_t r : share_resources_) {
    double x = alloc.v[r] / total_.v[r];
    if (x > s) s = x;
  }
  return s;
}

// The sort key's first part: dominant share, divided by the weight for roles and
// groups (frameworks within a role are unweighted), as compute_key in the twin.
static double weighted(const Engine::Item* item, double share_value) {
  if (item->type == Engine::Item::kGroup)
    return share_value / static_cast<const Engine::Group*>(item)->role->weight;
  if (item->type == Engine::Item::kRole) return share_value / item->weight;
  return share_value;
}

// Only for items not currently inside a set: keys of set members change only
// through reposition().
static void compute_key(Engine::Item* item, double share_value) {
  item->key_share = weighted(item, share_value);
  item->key_count = item->count;
}

static OrderKey pack(const Engine::Item* item) {
  uint64_t bits;
  std::memcpy(&bits, &item->key_share, sizeof bits);
  uint64_t count = std::min<uint64_t>(item->key_count, kOrderCountLimit);
  return (OrderKey(bits) << 64) | (count << 21) | item->tie;
}

static ItemSet::iterator insert(ItemSet& set, Engine::Item* item) {
  return set.insert(Entry{pack(item), item}).first;
}

static void set_insert(ItemSet& set, Engine::Item* item, double share_value) {
  compute_key(item, share_value);
  item->pos = insert(set, item);
}

// Give an item its new key; false when the key did not change.  Safe while
// the item is in sets: they are not searched until fix() reinserts it.
static bool rekey(Engine::Item* item, double share_value) {
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
static void fix(ItemSet& set, Engine::Item* item, ItemSet::iterator& pos) {
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

static void reposition(ItemSet& set, Engine::Item* item, double share_value) {
  if (rekey(item, share_value)) fix(set, item, item->pos);
}

// ---------------------------------------------------------------- setup

void Engine::initialize(const Options& options) {
  if (initialized_) fail(kState, "initialize: initialize() was already called");
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
  initialized_ = true;
  dirty_ = true;
}

Engine::Role* Engine::node_for(const std::string& name) {
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
      Role* raw = child.get();
      node->children.emplace(path, std::move(child));
      rank_roles();  // sets dirty_: rebuild_order() fills the sets
      node = raw;
    } else {
      node = it->second.get();
    }
    if (slash == std::string::npos) return node;
    start = slash + 1;
  }
}

void Engine::rank_roles() {
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
  role_nodes_ = all.size();
  dirty_ = true;  // the sets hold keys with the old ranks
}

void Engine::add_role(uint32_t role, const std::string& name) {
  ready("add_role");
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

void Engine::check_framework(const char* call, const FrameworkInput& info) {
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

Engine::Leaf* Engine::leaf(Framework& fw, uint32_t role) {
  auto it = fw.leaves.find(role);
  if (it != fw.leaves.end()) return it->second.get();
  Role* node = role_by_handle_.at(role);
  auto created = std::make_unique<Leaf>();
  created->framework = fw.handle;
  created->fw = &fw;
  created->role = node;
  created->tie = fw.handle;
  Leaf* raw = created.get();
  fw.leaves.emplace(role, std::move(created));
  compute_key(raw, share(raw->alloc));
  membership_dirty_ = true;
  return raw;
}

void Engine::maybe_remove_leaf(Framework& fw, uint32_t role) {
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

void Engine::add_framework(uint32_t handle, const FrameworkInput& info) {
  ready("add_framework");
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

void Engine::update_framework(uint32_t handle, const FrameworkInput& info) {
  ready("update_framework");
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
  membership_dirty_ = true;
}

void Engine::remove_framework(uint32_t handle) {
  ready("remove_framework");
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

void Engine::activate_framework(uint32_t handle, bool active) {
  const char* call = active ? "activate_framework" : "deactivate_framework";
  ready(call);
  framework(call, handle).active = active;
  membership_dirty_ = true;
}

void Engine::suppress(uint32_t handle, uint32_t role) {
  ready("suppress");
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

void Engine::revive(uint32_t handle, uint32_t role) {
  ready("revive");
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

Engine::Totals Engine::check_agent(const char* call, const AgentInput& info) {
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

void Engine::set_totals(const char* call, Agent& a, const Totals& totals, bool commit) {
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

void Engine::change_total(const Agent& a, int sign) {
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

void Engine::add_agent(uint32_t handle, const AgentInput& info) {
  ready("add_agent");
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

void Engine::update_agent(uint32_t handle, const AgentInput& info) {
  ready("update_agent");
  Agent& a = agent("update_agent", handle);
  Totals totals = check_agent("update_agent", info);
  set_totals("update_agent", a, totals, false);  // validates only
  change_total(a, -1);
  set_totals("update_agent", a, totals, true);
  a.active = info.active;
  change_total(a, +1);
}

void Engine::remove_agent(uint32_t handle) {
  ready("remove_agent");
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

void Engine::activate_agent(uint32_t handle, bool active) {
  const char* call = active ? "activate_agent" : "deactivate_agent";
  ready(call);
  agent(call, handle).active = active;
}

// ---------------------------------------------------------------- accounting

void Engine::account(Leaf& l, const Vec& v, int sign, bool count) {
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

void Engine::release(Agent& a, size_t index, const Vec& v) {
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

void Engine::recover(uint32_t fw_handle, uint32_t agent_handle, uint32_t role, uint32_t pool,
                     bool revocable, const double* resources, double refuse_seconds, double now) {
  const char* call = "recover_resources";
  ready(call);
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

void Engine::add_filter(uint32_t fw, uint32_t role, uint32_t agent_handle, const Vec& refused,
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

void Engine::drop_filter(Leaf& l, std::unordered_map<uint32_t, Filter>::iterator it) {
  // min_refused stays a valid lower bound when a filter goes, so it is kept.
  if (Agent* a = agents_.find(it->first)) a->filter_count -= 1;
  l.filters.erase(it);
  --filter_total_;
  membership_dirty_ = true;
}

void Engine::forget_filters(Leaf& l) {
  // min_refused stays a valid lower bound when a filter goes, so it is kept.
  for (const auto& entry : l.filters)
    if (Agent* a = agents_.find(entry.first)) a->filter_count -= 1;
  filter_total_ -= l.filters.size();
  if (!l.filters.empty()) membership_dirty_ = true;
  l.filters.clear();
}

void Engine::expire_filters(double now) {
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

void Engine::update_weights(const std::vector<std::pair<uint32_t, double>>& weights) {
  ready("update_weights");
  for (const auto& e : weights) {
    role_node("update_weights", e.first);
    if (!(e.second > 0) || !std::isfinite(e.second))
      fail(kInvalid, "update_weights: weight of role " + std::to_string(e.first) + " must be > 0");
  }
  for (const auto& e : weights) {
    Role& node = *role_by_handle_.at(e.first);
    weights_[node.name] = e.second;
    node.weight = e.second;
  }
  dirty_ = true;
}

void Engine::update_quota(uint32_t role, const double* guarantees, const double* limits) {
  ready("update_quota");
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

void Engine::pause(bool paused) {
  ready(paused ? "pause" : "resume");
  paused_ = paused;
}

// ---------------------------------------------------------------- the cycle

void Engine::rebuild_order() {
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

bool Engine::allocatable(const Vec& v) const {
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

Engine::Framework* Engine::eligible(Leaf& l, Agent& a) {
  Framework& fw = frameworks_.at(l.framework);
  uint32_t role = l.role->handle;
  if (!(fw.active && l.subscribed && !fw.suppressed.count(role))) return nullptr;
  if (a.has_gpus && options_.filter_gpu_resources && !(fw.capabilities & PMM_CAP_GPU_RESOURCES))
    return nullptr;
  return &fw;
}

bool Engine::limit_room(Role& role, Vec& room) const {
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
size_t Engine::offer(Leaf& l, const Framework& fw, Agent& a, const Vec* cap,
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
  if (with_revocable && (fw.capabilities & PMM_CAP_REVOCABLE_RESOURCES))
    take(a.free_revocable, kUnreserved, PMM_OFFER_REVOCABLE);
  return out;
}

bool Engine::filtered(Leaf& l, Agent& a, const Vec& total) const {
  if (l.filters.empty()) return false;
  auto it = l.filters.find(a.handle);
  return it != l.filters.end() && subset(total, it->second.refused, rcount_);
}

void Engine::give(Leaf& l, Agent& a, const Pool* pools, size_t n) {
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

void Engine::apply_pending() {
  for (auto& entry : pending_) account(*entry.first, entry.second, +1, true);
  pending_.clear();
}

bool Engine::agent_empty(const Agent& a) const {
  if (nonzero(a.free, rcount_) || nonzero(a.free_revocable, rcount_)) return false;
  for (const auto& e : a.free_reserved)
    if (nonzero(e.second, rcount_)) return false;
  return true;
}

Vec Engine::unsatisfied(const Role& role) const {
  Vec need;
  for (uint32_t r = 0; r < rcount_; ++r)
    need.v[r] = std::max(role.guarantees.v[r] - role.alloc.v[r], 0.0);
  return need;
}

void Engine::quota_roles(std::vector<Role*>& out) {
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

template <class Visit>
bool Engine::walk(Role& node, Visit& visit, bool live_only) {
  for (const Entry& entry : node.order) {
    if (entry.item->type == Item::kGroup) {
      Group* group = static_cast<Group*>(entry.item);
      for (const Entry& l : live_only ? group->live : group->eligible)
        if (!visit(*static_cast<Leaf*>(l.item))) return false;
    } else if (!walk(*static_cast<Role*>(entry.item), visit, live_only)) {
      return false;
    }
  }
  return true;
}

namespace {

// Put `l` into or take it out of `set`, tracking membership in `in`.
void set_membership(ItemSet& set, Engine::Item* l, ItemSet::iterator& pos, bool& in,
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
void Engine::refresh_live() {
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

bool Engine::everywhere_filtered_block(const Agent& a) const {
  if (a.filter_count == 0 || nonzero(a.free_revocable, rcount_)) return false;
  for (const auto& e : a.free_reserved)
    if (nonzero(e.second, rcount_)) return false;
  // Every (framework, role) filtered on all agents has a filter here whose
  // refused vector is >= min_refused >= what any of them could be offered.
  return subset(a.free, a.min_refused, rcount_);
}

void Engine::check_now(const char* call, double now) const {
  ready(call);
  if (std::isnan(now)) fail(kInvalid, std::string(call) + ": now must not be NaN");
}

void Engine::allocate(double now) {
  check_now("allocate", now);
  order_.clear();
  agents_.each([&](const Agent& a) {
    if (a.active) order_.push_back(a.handle);
  });
  cycle(now, false);
}

void Engine::allocate_agents(double now, const uint32_t* agents, size_t count) {
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
  order_.clear();
  for (size_t i = 0; i < count; ++i)
    if (agents_.at(agents[i]).active) order_.push_back(agents[i]);
  std::sort(order_.begin(), order_.end());
  order_.erase(std::unique(order_.begin(), order_.end()), order_.end());
  cycle(now, true);
}

void Engine::cycle(double now, bool partial) {
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
    for (uint32_t handle : order_) {
      Agent& a = agents_.at(handle);
      quota_roles(quota_scratch_);
      for (Role* node : quota_scratch_) {
        Vec need = unsatisfied(*node);
        if (!nonzero(need, rcount_)) continue;
        for (const Entry& entry : node->group->eligible) {
          Leaf& l = *static_cast<Leaf*>(entry.item);
          Framework* fw = eligible(l, a);
          if (fw == nullptr) continue;
          Vec room;
          Vec cap = need;
          if (limit_room(*l.role, room))
            for (uint32_t r = 0; r < rcount_; ++r) cap.v[r] = std::min(need.v[r], room.v[r]);
          Vec total;
          size_t n = offer(l, *fw, a, &cap, true, false, pools, total);
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
    for (uint32_t handle : order_) add(headroom, agents_.at(handle).free, rcount_);
    if (partial) {
      // Headroom is what the whole cluster has unallocated (as Mesos), not
      // only the candidates: the other active agents follow, in handle order.
      ++cycle_seq_;
      for (uint32_t handle : order_) agents_.at(handle).candidate_of = cycle_seq_;
      agents_.each([&](const Agent& a) {
        if (a.active && a.candidate_of != cycle_seq_) add(headroom, a.free, rcount_);
      });
    }
  }
  // Agents come in random order, so each visit starts with cache misses;
  // fetch the lines of agents a few visits ahead while working on this one.
  auto prefetch = [&](size_t k) {
    if (k >= order_.size()) return;
    const Agent* ahead = agents_.find(order_[k]);
    __builtin_prefetch(&ahead->free);
    __builtin_prefetch(&ahead->free_revocable);
    __builtin_prefetch(&ahead->free_reserved);
  };
  auto prefetch_data = [&](size_t k) {
    if (k >= order_.size()) return;
    const Agent* ahead = agents_.find(order_[k]);
    __builtin_prefetch(ahead->allocations.data());
  };
  for (size_t k = 0; k < std::min<size_t>(order_.size(), 8); ++k) prefetch(k);
  Vec room, total;  // scratch for every visit (a Vec zero-fills when made)
  for (size_t k = 0; k < order_.size(); ++k) {
    prefetch(k + 8);
    prefetch_data(k + 4);
    Agent& a = agents_.at(order_[k]);
    // Leaves in the eligible sets are active, subscribed and not
    // suppressed (refresh_live); only the agent can still rule one out.
    const bool gpu_only = a.has_gpus && options_.filter_gpu_resources;
    auto visit = [&](Leaf& l) -> bool {
      if (agent_empty(a)) return false;
      const Framework& fw = *l.fw;
      if (gpu_only && !(fw.capabilities & PMM_CAP_GPU_RESOURCES)) return true;
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
      size_t n = offer(l, fw, a, limited ? &room : nullptr, with_unreserved, true, pools, total);
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

}  // namespace pmm::drf
