// Drives the DRF engine through a long random call sequence, good and bad
// calls mixed, for AddressSanitizer/UndefinedBehaviorSanitizer and valgrind.
// Exits 0 when the sequence ran; any memory error aborts (sanitizers) or is
// reported (valgrind --error-exitcode).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine.hpp"
#include "pymesos_modules/module.hpp"

using namespace pmm::drf;

int main(int argc, char** argv) {
  const long steps = argc > 1 ? std::atol(argv[1]) : 20000;
  SplitMix64 rng(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 42);
  auto pick = [&](uint64_t n) { return rng.next() % n; };
  Engine e;
  Options o;
  o.resource_names = {"cpus", "mem", "gpus"};
  o.min_allocatable = {{0.01, 0, 0}, {0, 32, 0}};
  o.allocation_interval = 1.0;
  e.initialize(o);
  const char* names[] = {"*", "eng", "eng/ml", "eng/ml/batch", "ops"};
  for (uint32_t r = 0; r < 5; ++r) e.add_role(r, names[r]);
  const double amounts[] = {0.0, 0.5, 1.0, 4.0, 32.0, 1024.0, NAN, -1.0};
  long errors = 0, rows = 0;
  double now = 0;
  for (long step = 0; step < steps; ++step) {
    try {
      double v[3] = {amounts[pick(6)], amounts[pick(6)], double(pick(2))};
      if (pick(200) == 0) v[0] = amounts[6 + pick(2)];  // the odd NaN or negative
      uint32_t fw = pick(8), agent = pick(12), role = pick(5);
      switch (pick(14)) {
        case 0: {
          FrameworkInput in;
          in.roles = {role};
          if (pick(2)) in.roles.push_back((role + 1) % 5);
          in.capabilities = uint32_t(pick(8));
          e.add_framework(fw, in);
          break;
        }
        case 1: e.remove_framework(fw); break;
        case 2: e.activate_framework(fw, pick(2)); break;
        case 3: {
          AgentInput in;
          double total[3] = {8, 4096, double(pick(2))};
          double reserved[3] = {1, 256, 0};
          in.unreserved = total;
          if (pick(2)) in.reservations.push_back({role, reserved});
          if (pick(3) == 0) in.revocable = reserved;
          if (pick(2)) e.add_agent(agent, in); else e.update_agent(agent, in);
          break;
        }
        case 4: e.remove_agent(agent); break;
        case 5: e.activate_agent(agent, pick(2)); break;
        case 6: e.recover(fw, agent, role, pick(3) ? PMM_UNRESERVED_HANDLE : role, pick(4) == 0, v,
                          double(pick(3)) * 5, now); break;
        case 7: e.suppress(fw, pick(2) ? role : PMM_ALL_ROLES_HANDLE); break;
        case 8: e.revive(fw, pick(2) ? role : PMM_ALL_ROLES_HANDLE); break;
        case 9: e.update_weights({{role, double(pick(4))}}); break;
        case 10: {
          double inf[3] = {INFINITY, INFINITY, INFINITY};
          e.update_quota(role, v, pick(2) ? inf : v);
          break;
        }
        case 11: now += double(pick(4)); break;
        default: {
          if (pick(2)) {
            e.allocate(now);
          } else {
            // A batched cycle over a few agents, duplicates and all; an unknown
            // one (removed or never added) makes it a rejected call.
            const uint32_t candidates[4] = {uint32_t(pick(12)), uint32_t(pick(12)), agent, agent};
            e.allocate_agents(now, candidates, pick(5));
          }
          rows += long(e.rows().size());
          // give back a random half of what was offered, some with filters
          for (size_t i = 0; i < e.rows().size(); ++i) {
            if (pick(2)) continue;
            const auto& row = e.rows()[i];
            e.recover(row.framework, row.agent, row.role, row.pool, row.flags != 0,
                      &e.values()[i * e.resource_count()], double(pick(3)), now);
          }
        }
      }
    } catch (const pmm::Error&) {
      ++errors;
    }
  }
  std::printf("steps %ld rows %ld rejected %ld\n", steps, rows, errors);
  return rows > 0 && errors > 0 ? 0 : 1;
}
