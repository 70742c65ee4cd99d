/*
 * pymesos-modules: the resource estimator kind's function table.
 *
 * The agent asks its estimator (`--resource_estimator=NAME`) every
 * `--oversubscribed_resources_interval` how much of its resources may be
 * oversubscribed now; it reports the total to the master, which offers it as
 * revocable resources to frameworks with REVOCABLE_RESOURCES (as Mesos does).
 *
 * usage_json: {"total": {"cpus": 4, "mem": 8192, ...},
 *              "executors": [{"container_id": "...", "task_id": "...",
 *                             "framework_id": "...", "revocable": true,
 *                             "resources": {"cpus": 1, ...},
 *                             "statistics": {"mem_rss_bytes": ..., ...}}]}
 * answer:     {"cpus": 2, "mem": 512}  (scalar name -> amount; write nothing for none)
 *
 * Threading: calls on one instance never overlap.
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
