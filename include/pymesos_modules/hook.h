/*
 * pymesos-modules: the hook kind's function table.
 *
 * Hooks (`--hooks=a,b` on the master and the agent) are told about, and may
 * decorate, what the runtime does.  Every entry is optional: leave it NULL
 * (or build the table with a struct_size that ends before it) and the
 * runtime skips this module at that moment.  Several hooks chain in flag
 * order; each sees the previous hook's result.  A hook that fails (non-OK
 * status, or an answer of the wrong shape) is logged with its module name
 * and skipped: it never fails the task (as in Mesos).
 *
 * Arguments are UTF-8, never NULL: ids and hostnames as plain strings, the
 * rest Mesos v1 JSON (protobuf JSON mapping) documents: TaskInfo,
 * FrameworkInfo, TaskStatus, and AgentInfo ({"hostname", "port", "id":
 * {"value"}, "resources": [Resource], "attributes": [Attribute]}).  A
 * decorator answers through its pmm_output; writing nothing means "no change":
 *   labels:         [{"key": "k", "value": "v"}, ...]   the task's new labels (replace
 *                                                        its own: append to keep them)
 *   environment:    {"NAME": "value", ...}               the whole new environment
 *   status:         {"labels": [...], "container_status": {...}}   either optional;
 *                   each given one replaces the status' own; other fields are ignored
 *   resources:      [Resource, ...]                      the agent's new resources
 *   attributes:     [Attribute, ...]                     the agent's new attributes
 *
 * When: master_launch_task_label_decorator before the master sends a task
 * to its agent; master_agent_lost after an agent is removed (its tasks are
 * lost); agent_run_task_label_decorator before the agent runs a task;
 * agent_task_environment_decorator with the task's full environment just
 * before the process starts; agent_task_status_decorator on every status
 * update the agent sends; agent_resources_decorator and
 * agent_attributes_decorator once at agent start, before it registers.
 *
 * Threading: calls on one instance never overlap (the host serializes them);
 * decorators run on the runtime's event loop, so keep them short (no
 * network waits).  Two instances (say one in the master and one in an agent
 * of `pymesos-modules local`) may run at once: state shared between
 * instances needs a lock.  C++: pymesos_modules/hook.hpp builds this table
 * from a class, with an entry for each hook method the class declares.
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
