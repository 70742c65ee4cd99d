// pybind11 binding of the DRF engine: the second native path.  The same
// engine as libpmm_drf.so, called directly instead of through the C ABI, so the
// benchmark can show what the cffi bridge costs.  The GIL is released around
// allocate(); results are zero-copy NumPy views kept alive by the engine.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "engine.hpp"
#include "pymesos_modules/module.hpp"

namespace py = pybind11;
using pmm::drf::Engine;

namespace {

const double* data_of(const py::array_t<double, py::array::c_style | py::array::forcecast>& a,
                      uint32_t expected, const char* what) {
  if (static_cast<uint32_t>(a.size()) != expected)
    throw pmm::Error(PMM_ERR_INVALID, std::string(what) + " has " + std::to_string(a.size()) +
                                          " values, expected " + std::to_string(expected));
  return a.data();
}

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
// Agent handles: exactly uint32 and contiguous (no forcecast, so a handle
// that does not fit is refused instead of silently wrapped).
using Handles = py::array_t<uint32_t, py::array::c_style>;

// (rows, values) of the engine's last cycle: views into its reused buffers,
// kept alive by `self`.
py::tuple offer_views(const py::object& self, const Engine& e) {
  const auto& rows = e.rows();
  const auto& values = e.values();
  const py::ssize_t n = static_cast<py::ssize_t>(rows.size());
  const py::ssize_t r = e.resource_count();
  py::array_t<uint32_t> row_view({n, py::ssize_t(6)},
                                 reinterpret_cast<const uint32_t*>(rows.data()), self);
  py::array_t<double> value_view({n, r}, values.data(), self);
  return py::make_tuple(row_view, value_view);
}

}  // namespace

PYBIND11_MODULE(_drf, m) {
  m.doc() = "Direct pybind11 binding of the native DRF allocation engine";
  m.attr("ABI_MAJOR") = static_cast<int>(PMM_ABI_MAJOR);
  m.attr("ABI_MINOR") = static_cast<int>(PMM_ABI_MINOR);

  static py::exception<pmm::Error> engine_error(m, "EngineError");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pmm::Error& e) {
      // args = (status, message), so Python can keep the ABI status code.
      py::tuple args = py::make_tuple(static_cast<int>(e.status()), e.what());
      PyErr_SetObject(engine_error.ptr(), args.ptr());
    }
  });

  py::class_<Engine>(m, "Engine")
      .def(py::init<>())
      .def("initialize",
           [](Engine& e, std::vector<std::string> names, std::vector<std::vector<double>> minimum,
              std::vector<bool> excluded, uint64_t seed, double interval, bool gpu) {
             pmm::drf::Options o;
             o.resource_names = std::move(names);
             o.min_allocatable = std::move(minimum);
             o.fairness_excluded = std::move(excluded);
             o.random_seed = seed;
             o.allocation_interval = interval;
             o.filter_gpu_resources = gpu;
             e.initialize(o);
           })
      .def("add_role", &Engine::add_role)
      .def("add_framework",
           [](Engine& e, uint32_t fw, std::vector<uint32_t> roles, std::vector<uint32_t> suppressed,
              uint32_t caps, bool active) {
             e.add_framework(fw, {std::move(roles), std::move(suppressed), caps, active});
           })
      .def("update_framework",
           [](Engine& e, uint32_t fw, std::vector<uint32_t> roles, std::vector<uint32_t> suppressed,
              uint32_t caps, bool active) {
             e.update_framework(fw, {std::move(roles), std::move(suppressed), caps, active});
           })
      .def("remove_framework", &Engine::remove_framework)
      .def("activate_framework", &Engine::activate_framework)
      .def("add_agent",
           [](Engine& e, uint32_t agent, Doubles unreserved,
              std::vector<std::pair<uint32_t, Doubles>> reservations, py::object revocable,
              std::vector<std::tuple<uint32_t, uint32_t, uint32_t, bool, Doubles>> allocations,
              bool active, bool update) {
             const uint32_t n = e.resource_count();
             pmm::drf::AgentInput in;
             in.unreserved = data_of(unreserved, n, "unreserved");
             for (auto& r : reservations)
               in.reservations.emplace_back(r.first, data_of(r.second, n, "reservation"));
             Doubles rev;
             if (!revocable.is_none()) {
               rev = revocable.cast<Doubles>();
               in.revocable = data_of(rev, n, "revocable");
             }
             for (auto& a : allocations)
               in.allocations.push_back({std::get<0>(a), std::get<1>(a), std::get<2>(a),
                                         std::get<3>(a), data_of(std::get<4>(a), n, "allocation")});
             in.active = active;
             if (update)
               e.update_agent(agent, in);
             else
               e.add_agent(agent, in);
           })
      .def("remove_agent", &Engine::remove_agent)
      .def("activate_agent", &Engine::activate_agent)
      .def("recover",
           [](Engine& e, uint32_t fw, uint32_t agent, uint32_t role, uint32_t pool, bool revocable,
              Doubles resources, double refuse, double now) {
             e.recover(fw, agent, role, pool, revocable,
                       data_of(resources, e.resource_count(), "resources"), refuse, now);
           })
      .def("suppress", &Engine::suppress)
      .def("revive", &Engine::revive)
      .def("update_weights", &Engine::update_weights)
      .def("update_quota",
           [](Engine& e, uint32_t role, Doubles g, Doubles l) {
             e.update_quota(role, data_of(g, e.resource_count(), "guarantees"),
                            data_of(l, e.resource_count(), "limits"));
           })
      .def("pause", &Engine::pause)
      .def("allocate",
           [](py::object self, double now) {
             Engine& e = self.cast<Engine&>();
             {
               py::gil_scoped_release release;
               e.allocate(now);
             }
             return offer_views(self, e);
           })
      .def("allocate_agents",
           [](py::object self, double now, Handles agents) {
             Engine& e = self.cast<Engine&>();
             {
               // `agents` stays referenced by this frame, so its data outlives the call.
               py::gil_scoped_release release;
               e.allocate_agents(now, agents.data(), static_cast<size_t>(agents.size()));
             }
             return offer_views(self, e);
           })
      .def("stats", [](const Engine& e) {
        auto s = e.stats();
        py::dict d;
        d["allocation_runs"] = double(s.allocation_runs);
        d["offers_made"] = double(s.offers_made);
        d["filtered_skips"] = double(s.filtered_skips);
        d["frameworks"] = double(e.frameworks());
        d["agents"] = double(e.agents());
        d["roles"] = double(e.roles());
        d["active_filters"] = double(e.active_filters());
        d["last_allocation_ms"] = s.last_allocation_ms;
        return d;
      });
}
