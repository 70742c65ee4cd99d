/*
 * pymesos-modules: the QoS controller kind's function table.
 *
 * The agent asks its QoS controller (`--qos_controller=NAME`) every
 * `--qos_correction_interval_min` (1 s by default) which revocable tasks to
 * kill so that the agent's own work keeps its quality of service.  It kills
 * those with TASK_KILLED, reason REASON_EXECUTOR_PREEMPTED and the
 * correction's message; a correction naming a task that is not revocable, or
 * not running, is ignored and logged.
 *
 * usage_json: as in resource_estimator.h (UTF-8, never NULL).
 * answer (appended to corrections_json):
 *   [{"container_id": "...", "task_id": "...", "framework_id": "...",
 *     "message": "why"}]                  (message optional; ids as in usage_json)
 *   Writing nothing, or [], means no correction.
 *
 * Threading: calls on one instance never overlap (the host serializes them);
 * two instances may be called at once, so state shared between instances
 * needs a lock.  C++: pymesos_modules/oversubscription.hpp builds this table
 * from a class with `std::string corrections(const std::string&)`.
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
