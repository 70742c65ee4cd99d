/*
 * pymesos-modules: the http_authenticator kind's function table.
 *
 * With `--authenticate_frameworks`, the master asks each module of
 * `--http_authenticators` in order to authenticate a scheduler API request
 * from its headers; the first that names a principal wins (as Mesos' HTTP
 * authenticator modules).
 *
 * headers_json: {"Authorization": "Bearer ...", ...}  (one value per name)
 * answer:       {"principal": "alice"}                              authenticated
 *               {"status": 401, "message": "...", "challenge": "Bearer realm=\"mesos\""}
 *               {"status": 403, "message": "..."}                   refused
 *
 * Threading: called from the master's event loop, one call at a time.
 */
#ifndef PYMESOS_MODULES_HTTP_AUTHENTICATOR_H
#define PYMESOS_MODULES_HTTP_AUTHENTICATOR_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN http_authenticator */

typedef struct pmm_http_authenticator_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    pmm_status (*authenticate)(void *instance, const char *headers_json, pmm_output *result_json,
                               pmm_error *error);
} pmm_http_authenticator_vtable;

/* PMM_CDEF_END http_authenticator */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_HTTP_AUTHENTICATOR_H */
