// Times the DRF engine alone (no Python between cycles) on the bench
// scenarios of pymesos_modules/bench/scenarios.py: steady, suppressed,
// declined.  For profiling (valgrind --tool=callgrind, perf) and for
// telling engine time from bridge time; tests/native/test_sanitizers.py
// also runs it on a tiny cluster under the sanitizers.
//
//   drf_bench <steady|suppressed|declined> <agents> <frameworks> [cycles] [roles]
//
// Prints set-up seconds, min/median cycle ms, offers per cycle, and a hash
// of every offer made after set-up: two builds of the engine that print the
// same hash made the same decisions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine.hpp"
#include "pymesos_modules/module.hpp"

using namespace pmm::drf;
using Clock = std::chrono::steady_clock;

namespace {

const double kAgent[4] = {24, 4096, 4096, 0};
constexpr double kLongRefusal = 1e6;
constexpr uint32_t kWave = 10;

// FNV-1a over the bytes of every offer row (without its padding) and value.
struct Hash {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void cycle(const Engine& e) {
    for (const auto& row : e.rows()) bytes(&row, 5 * sizeof(uint32_t));
    bytes(e.values().data(), e.values().size() * sizeof(double));
  }
};

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct Bench {
  Engine e;
  uint32_t agents, frameworks, roles;
  double now = 0;
  uint32_t keeper = 0;
  uint32_t suppressed = 0;

  Bench(uint32_t a, uint32_t f, uint32_t r) : agents(a), frameworks(f), roles(r) {
    Options o;
    o.resource_names = {"cpus", "mem", "disk", "gpus"};
    o.min_allocatable = {{0.01, 0, 0, 0}, {0, 32, 0, 0}};
    o.random_seed = 1;
    o.allocation_interval = 1.0;
    e.initialize(o);
    for (uint32_t i = 0; i < roles; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "role%04u", i);
      e.add_role(i, roles == 1 ? std::string("*") : std::string(name));
    }
    for (uint32_t fw = 0; fw < frameworks; ++fw) {
      FrameworkInput in;
      in.roles = {fw % roles};
      e.add_framework(fw, in);
    }
  }

  void add_agents(bool used) {
    const double in_use[4] = {16, 0, 0, 0};
    for (uint32_t a = 0; a < agents; ++a) {
      AgentInput in;
      in.unreserved = kAgent;
      uint32_t fw = a % frameworks;
      if (used) in.allocations.push_back({fw, fw % roles, PMM_UNRESERVED_HANDLE, false, in_use});
      e.add_agent(a, in);
    }
  }

  // Recovers every offered row; returns how many were declined with a filter.
  size_t give_back(bool declining) {
    std::vector<pmm_offer_row> rows = e.rows();
    std::vector<double> values = e.values();
    const uint32_t n = e.resource_count();
    size_t declined = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& row = rows[i];
      bool decline = declining && row.framework != keeper;
      declined += decline;
      e.recover(row.framework, row.agent, row.role, row.pool, row.flags != 0, &values[i * n],
                decline ? kLongRefusal : 0.0, now);
    }
    return declined;
  }

  void setup(const std::string& scenario) {
    if (scenario != "declined") {
      add_agents(false);
      return;
    }
    add_agents(true);
    keeper = frameworks - 1;
    // As the Python scenario: decline in waves, later waves suppressed.
    std::vector<uint32_t> waiting;
    for (uint32_t fw = 0; fw + 1 < frameworks; ++fw) waiting.push_back(fw);
    for (size_t i = kWave; i < waiting.size(); ++i) e.suppress(waiting[i], PMM_ALL_ROLES_HANDLE);
    for (size_t start = 0; start < waiting.size(); start += kWave) {
      size_t stop = std::min(waiting.size(), start + kWave);
      if (start)
        for (size_t i = start; i < stop; ++i) e.revive(waiting[i], PMM_ALL_ROLES_HANDLE);
      for (size_t round = 0; round < 2 * (stop - start) + 10; ++round) {
        e.allocate(now);
        if (give_back(true) == 0) break;
      }
    }
  }

  void between(const std::string& scenario) {
    give_back(scenario == "declined");
    if (scenario == "suppressed") {
      uint32_t target = std::min(frameworks / 2, suppressed + std::max(frameworks / 10, 1u));
      for (uint32_t fw = suppressed; fw < target; ++fw) e.suppress(fw, PMM_ALL_ROLES_HANDLE);
      suppressed = target;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: drf_bench <steady|suppressed|declined> <agents> <frameworks> "
                 "[cycles] [roles]\n");
    return 2;
  }
  const std::string scenario = argv[1];
  if (scenario != "steady" && scenario != "suppressed" && scenario != "declined") {
    std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
  }
  const uint32_t agents = uint32_t(std::atol(argv[2]));
  const uint32_t frameworks = uint32_t(std::atol(argv[3]));
  const int cycles = argc > 4 ? std::atoi(argv[4]) : 10;
  const uint32_t roles = argc > 5 ? uint32_t(std::atol(argv[5])) : 1;
  if (agents == 0 || frameworks == 0 || roles == 0 || cycles <= 0) {
    std::fprintf(stderr, "agents, frameworks, roles and cycles must be > 0\n");
    return 2;
  }
  try {
    Bench b(agents, frameworks, roles);
    auto started = Clock::now();
    b.setup(scenario);
    double setup_s = ms_since(started) / 1000;
    Hash hash;
    for (int w = 0; w < 2; ++w) {  // warm-up, as the Python bench
      b.e.allocate(b.now);
      hash.cycle(b.e);
      b.between(scenario);
      b.now += 1;
    }
    std::vector<double> times;
    size_t offers = 0;
    for (int c = 0; c < cycles; ++c) {
      started = Clock::now();
      b.e.allocate(b.now);
      times.push_back(ms_since(started));
      offers = b.e.rows().size();
      hash.cycle(b.e);
      b.between(scenario);
      b.now += 1;
    }
    std::sort(times.begin(), times.end());
    std::printf(
        "%s %u x %u (%u roles): setup %.2f s, cycle min %.3f ms median %.3f ms, %zu offers, "
        "hash %016llx\n",
        scenario.c_str(), agents, frameworks, roles, setup_s, times.front(),
        times[times.size() / 2], offers, static_cast<unsigned long long>(hash.h));
  } catch (const pmm::Error& err) {
    std::fprintf(stderr, "engine error: %s\n", err.what());
    return 1;
  }
  return 0;
}
