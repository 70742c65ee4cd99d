/*
 * pymesos-modules: the QoS controller kind's function table.
 *
 * The agent asks its QoS controller (`--qos_controller=NAME`) about once a
 * second which revocable tasks to kill so that the agent's own work keeps
 * its quality of service; it kills those with REASON_EXECUTOR_PREEMPTED and
 * ignores (and logs) a correction naming a task that is not revocable.
 *
 * usage_json: as in resource_estimator.h
 * answer:     [{"container_id": "...", "task_id": "...", "framework_id": "...",
 *               "message": "why"}]  (write nothing, or [], for no correction)
 *
 * Threading: calls on one instance never overlap.
 */
#ifndef PYMESOS_MODULES_QOS_CONTROLLER_H
#define PYMESOS_MODULES_QOS_CONTROLLER_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN qos_controller */

typedef struct pmm_qos_controller_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    pmm_status (*corrections)(void *instance, const char *usage_json,
                              pmm_output *corrections_json, pmm_error *error);
} pmm_qos_controller_vtable;

/* PMM_CDEF_END qos_controller */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_QOS_CONTROLLER_H */
