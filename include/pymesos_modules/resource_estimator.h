/*
 * pymesos-modules: the resource estimator kind's function table.
 *
 * The agent asks its estimator (`--resource_estimator=NAME`) every
 * `--oversubscribed_resources_interval` how much of its resources may be
 * oversubscribed now; it reports the total to the master, which offers it as
 * revocable resources to frameworks with REVOCABLE_RESOURCES (as Mesos does).
 *
 * usage_json (UTF-8, never NULL), what the agent knows right now:
 *   {"total": {"cpus": 4, "mem": 8192, ...},      the agent's non-revocable total
 *    "executors": [{"container_id": "...", "task_id": "...",
 *                   "framework_id": "...", "revocable": true,
 *                   "resources": {"cpus": 1, ...},        allocated to the task
 *                   "statistics": {"mem_rss_bytes": ..., ...}}]}   isolators' usage()
 *   Scalars only: cpus, mem and disk in MB, gpus, custom scalars by name.
 *   Statistics use Mesos' ResourceStatistics field names; a task whose
 *   isolators measure nothing has {}.
 * answer (appended to resources_json): the revocable resources the agent may
 *   offer now, as a total (not a change): {"cpus": 2, "mem": 512}, each
 *   amount finite and >= 0.  Writing nothing means none.  The host refuses
 *   (and logs) an answer that is not such an object.
 *
 * Why JSON in and out rather than flat structs: the call happens every few
 * seconds, not per agent per allocation cycle, so parsing costs nothing that
 * matters, while the document can grow (new statistics, new per-task fields)
 * without an ABI change; a module reads only the fields it knows.
 *
 * Threading: calls on one instance never overlap (the host serializes them);
 * two instances may be called at once, so state shared between instances
 * needs a lock.  C++: pymesos_modules/oversubscription.hpp builds this table
 * from a class with `std::string oversubscribable(const std::string&)`.
 */
#ifndef PYMESOS_MODULES_RESOURCE_ESTIMATOR_H
#define PYMESOS_MODULES_RESOURCE_ESTIMATOR_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN resource_estimator */

typedef struct pmm_resource_estimator_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    pmm_status (*oversubscribable)(void *instance, const char *usage_json,
                                   pmm_output *resources_json, pmm_error *error);
} pmm_resource_estimator_vtable;

/* PMM_CDEF_END resource_estimator */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_RESOURCE_ESTIMATOR_H */
