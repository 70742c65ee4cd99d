/*
 * pymesos-modules: the hook kind's function table.
 *
 * Hooks (`--hooks=a,b` on the master and the agent) are told about, and may
 * decorate, what the runtime does.  Every entry is optional: leave it NULL
 * and the runtime skips this module for that moment.  Several hooks chain in
 * flag order; each sees the previous hook's result.  A hook that fails is
 * logged and skipped: it never fails the task (as in Mesos).
 *
 * Arguments are Mesos v1 JSON (protobuf JSON mapping) documents.  A
 * decorator answers through its pmm_output, and writing nothing means "no
 * change":
 *   labels:         [{"key": "k", "value": "v"}, ...]   (the task's new labels)
 *   environment:    {"NAME": "value", ...}               (the whole new environment)
 *   status:         {"labels": [...], "container_status": {...}}  (either optional)
 *   resources:      [Resource, ...]                      (the agent's new resources)
 *   attributes:     [Attribute, ...]                     (the agent's new attributes)
 *
 * Threading: the runtime calls hooks from its event loop thread, one call at
 * a time per instance.
 */
#ifndef PYMESOS_MODULES_HOOK_H
#define PYMESOS_MODULES_HOOK_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN hook */

typedef struct pmm_hook_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    /* master: before a task is sent to its agent */
    pmm_status (*master_launch_task_label_decorator)(void *instance, const char *task_info_json,
                                                     const char *framework_info_json,
                                                     const char *agent_id, pmm_output *labels_json,
                                                     pmm_error *error);
    /* master: an agent was removed (its tasks are lost) */
    pmm_status (*master_agent_lost)(void *instance, const char *agent_id, const char *hostname,
                                    pmm_error *error);
    /* agent: a task is about to run */
    pmm_status (*agent_run_task_label_decorator)(void *instance, const char *task_info_json,
                                                 const char *framework_info_json,
                                                 const char *agent_info_json,
                                                 pmm_output *labels_json, pmm_error *error);
    /* agent: the environment a task process will get */
    pmm_status (*agent_task_environment_decorator)(void *instance, const char *task_info_json,
                                                   const char *environment_json,
                                                   pmm_output *environment_out_json,
                                                   pmm_error *error);
    /* agent: every status update of a task, before it is sent */
    pmm_status (*agent_task_status_decorator)(void *instance, const char *framework_id,
                                              const char *status_json, pmm_output *status_out_json,
                                              pmm_error *error);
    /* agent: at start, before registering */
    pmm_status (*agent_resources_decorator)(void *instance, const char *agent_info_json,
                                            pmm_output *resources_json, pmm_error *error);
    pmm_status (*agent_attributes_decorator)(void *instance, const char *agent_info_json,
                                             pmm_output *attributes_json, pmm_error *error);
} pmm_hook_vtable;

/* PMM_CDEF_END hook */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_HOOK_H */
