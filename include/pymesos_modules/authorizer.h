/*
 * pymesos-modules: the authorizer kind's function table.
 *
 * The master (`--authorizers=NAME`) asks before a framework registers in a
 * role (action "REGISTER_FRAMEWORK", object = the role) and before a task
 * runs as a user (action "RUN_TASK", object = the user), as Mesos'
 * authorizer modules are asked.
 *
 * request_json: {"action": "REGISTER_FRAMEWORK", "subject": {"value": "principal"},
 *                "object": {"value": "role-or-user"}}
 *               ("subject" is absent when nobody authenticated)
 * *allowed:     1 to allow, 0 to deny.  A failing call (non-zero status) denies.
 *
 * Threading: called from the master's event loop, one call at a time.
 */
#ifndef PYMESOS_MODULES_AUTHORIZER_H
#define PYMESOS_MODULES_AUTHORIZER_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN authorizer */

typedef struct pmm_authorizer_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    pmm_status (*authorized)(void *instance, const char *request_json, int32_t *allowed,
                             pmm_error *error);
} pmm_authorizer_vtable;

/* PMM_CDEF_END authorizer */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_AUTHORIZER_H */
