/* The smallest useful module: an anonymous module written in plain C.
 * On create it logs a greeting (parameter "greeting") and publishes the
 * gauge "hello/instances" and counter "hello/created" through the host API,
 * which is how an anonymous module shows up in /metrics/snapshot. */
#include <stdatomic.h>
#include <stdlib.h>

#include "bundled.h"
#include "pymesos_modules/module.h"

typedef struct hello_instance {
    const pmm_host_api *host;
} hello_instance;

/* Atomic: instances may be created and destroyed from different threads. */
static atomic_int hello_live_instances = 0;

static pmm_status hello_create(const pmm_host_api *host, const pmm_parameters *parameters,
                               void **instance, pmm_error *error) {
    const char *greeting = pmm_parameter_get(parameters, "greeting");
    if (greeting != NULL && greeting[0] == '\0')
        return pmm_error_set(error, PMM_ERR_INVALID, "parameter 'greeting' must not be empty");
    hello_instance *self = malloc(sizeof *self);
    if (self == NULL) return pmm_error_set(error, PMM_ERR_NO_MEMORY, "out of memory");
    self->host = host;
    char line[256];
    snprintf(line, sizeof line, "hello, %s", greeting != NULL ? greeting : "world");
    if (PMM_HOST_HAS(host, log)) host->log(host->context, PMM_LOG_INFO, line);
    int live = atomic_fetch_add(&hello_live_instances, 1) + 1;
    if (PMM_HOST_HAS(host, counter_add)) host->counter_add(host->context, "hello/created", 1.0);
    if (PMM_HOST_HAS(host, gauge_set))
        host->gauge_set(host->context, "hello/instances", (double)live);
    *instance = self;
    return PMM_OK;
}

static void hello_destroy(void *instance) {
    hello_instance *self = instance;
    int live = atomic_fetch_sub(&hello_live_instances, 1) - 1;
    if (PMM_HOST_HAS(self->host, gauge_set))
        self->host->gauge_set(self->host->context, "hello/instances", (double)live);
    free(self);
}

static const pmm_module_descriptor hello_descriptor = {
    PMM_DESCRIPTOR_HEADER(PMM_KIND_ANONYMOUS),
    "org_pymesos_Hello",
    PMM_BUNDLED_VERSION,
    PMM_BUNDLED_AUTHOR,
    PMM_BUNDLED_EMAIL,
    "Anonymous module that greets on creation and publishes hello/* metrics",
    NULL,
    hello_create,
    hello_destroy,
    NULL,
};

PMM_EXPORT const pmm_module_descriptor *const *pmm_module_entry(uint32_t *count) {
    static const pmm_module_descriptor *const modules[] = {&hello_descriptor};
    *count = 1;
    return modules;
}
