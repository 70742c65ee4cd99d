/* An isolator written in C (no C++ layer): it answers prepare() with its
 * `launch_info` parameter and watch() with its `limitation` parameter,
 * verbatim, so tests can send any document (good or broken) through a real
 * native module.  It keeps a small table of the containers it prepared, as a
 * real isolator would, and refuses calls naming others. */
#include <stdlib.h>
#include <string.h>

#include "pymesos_modules/isolator.h"

enum { SCRIPTED_MAX_CONTAINERS = 8, SCRIPTED_ID_SIZE = 64 };

typedef struct scripted {
    const char *launch_info; /* copies: a module keeps no pointer into the host's parameters */
    const char *limitation;
    char ids[SCRIPTED_MAX_CONTAINERS][SCRIPTED_ID_SIZE]; /* "" = free slot */
} scripted;

static char *copy_or_null(const char *text) {
    if (text == NULL) return NULL;
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);
    if (copy != NULL) memcpy(copy, text, size);
    return copy;
}

static void scripted_destroy(void *instance) {
    scripted *self = instance;
    free((char *)self->launch_info);
    free((char *)self->limitation);
    free(self);
}

static pmm_status scripted_create(const pmm_host_api *host, const pmm_parameters *parameters,
                                  void **instance, pmm_error *error) {
    (void)host;
    scripted *self = calloc(1, sizeof *self);
    if (self == NULL) return pmm_error_set(error, PMM_ERR_NO_MEMORY, "out of memory");
    const char *launch_info = pmm_parameter_get(parameters, "launch_info");
    const char *limitation = pmm_parameter_get(parameters, "limitation");
    self->launch_info = copy_or_null(launch_info);
    self->limitation = copy_or_null(limitation);
    if ((launch_info != NULL && self->launch_info == NULL) ||
        (limitation != NULL && self->limitation == NULL)) {
        scripted_destroy(self);
        return pmm_error_set(error, PMM_ERR_NO_MEMORY, "out of memory");
    }
    *instance = self;
    return PMM_OK;
}

/* The slot holding `id`, or -1 (then the error names the id). */
static int find(scripted *self, const char *id, pmm_error *error) {
    for (int i = 0; id != NULL && i < SCRIPTED_MAX_CONTAINERS; ++i)
        if (strcmp(self->ids[i], id) == 0 && id[0] != '\0') return i;
    pmm_error_set(error, PMM_ERR_NOT_FOUND, "unknown container '%s'", id ? id : "(null)");
    return -1;
}

static pmm_status scripted_prepare(void *instance, const pmm_container_config *config,
                                   pmm_output *launch_info_json, pmm_error *error) {
    scripted *self = instance;
    if (config == NULL || config->container_id == NULL || config->container_id[0] == '\0' ||
        strlen(config->container_id) >= SCRIPTED_ID_SIZE)
        return pmm_error_set(error, PMM_ERR_INVALID, "container id missing or too long");
    int free_slot = -1;
    for (int i = 0; i < SCRIPTED_MAX_CONTAINERS; ++i) {
        if (strcmp(self->ids[i], config->container_id) == 0)
            return pmm_error_set(error, PMM_ERR_EXISTS, "container '%s' is already prepared",
                                 config->container_id);
        if (self->ids[i][0] == '\0' && free_slot < 0) free_slot = i;
    }
    if (free_slot < 0) return pmm_error_set(error, PMM_ERR_STATE, "too many containers");
    if (self->launch_info != NULL) {
        pmm_status status = pmm_output_write(launch_info_json, self->launch_info);
        if (status != PMM_OK) return pmm_error_set(error, status, "cannot write the launch info");
    }
    strcpy(self->ids[free_slot], config->container_id);
    return PMM_OK;
}

static pmm_status scripted_isolate(void *instance, const char *container_id, int64_t pid,
                                   pmm_error *error) {
    (void)pid;
    return find(instance, container_id, error) < 0 ? PMM_ERR_NOT_FOUND : PMM_OK;
}

static pmm_status scripted_update(void *instance, const char *container_id, uint32_t count,
                                  const char *const *names, const double *values,
                                  pmm_error *error) {
    (void)count, (void)names, (void)values;
    return find(instance, container_id, error) < 0 ? PMM_ERR_NOT_FOUND : PMM_OK;
}

static pmm_status scripted_usage(void *instance, const char *container_id,
                                 pmm_resource_statistics *statistics, pmm_error *error) {
    if (find(instance, container_id, error) < 0) return PMM_ERR_NOT_FOUND;
    statistics->processes = 1; /* the one field it measures; the rest stay NaN */
    return PMM_OK;
}

static pmm_status scripted_watch(void *instance, const char *container_id, int32_t exited,
                                 int32_t wait_status, pmm_output *limitation_json,
                                 pmm_error *error) {
    scripted *self = instance;
    (void)exited, (void)wait_status;
    if (find(self, container_id, error) < 0) return PMM_ERR_NOT_FOUND;
    if (self->limitation == NULL) return PMM_OK; /* nothing written: no limitation */
    pmm_status status = pmm_output_write(limitation_json, self->limitation);
    return status == PMM_OK ? PMM_OK : pmm_error_set(error, status, "cannot write the limitation");
}

static pmm_status scripted_cleanup(void *instance, const char *container_id, pmm_error *error) {
    scripted *self = instance;
    int slot = find(self, container_id, error);
    if (slot < 0) return PMM_ERR_NOT_FOUND;
    self->ids[slot][0] = '\0';
    return PMM_OK;
}

/* The table as ABI 1.0 had it (it ends before recover()): a module built
 * before a call was appended must keep loading and running unchanged. */
static const pmm_isolator_vtable scripted_table = {
    .struct_size = offsetof(pmm_isolator_vtable, recover),
    .prepare = scripted_prepare,
    .isolate = scripted_isolate,
    .update = scripted_update,
    .usage = scripted_usage,
    .watch = scripted_watch,
    .cleanup = scripted_cleanup,
};

static const pmm_module_descriptor scripted_descriptor = {
    PMM_DESCRIPTOR_HEADER(PMM_KIND_ISOLATOR),
    "test_ScriptedIsolator",
    "0.1.0",
    "pymesos-modules tests",
    "tests@example.invalid",
    "An isolator in C that answers with its parameters",
    NULL,
    scripted_create,
    scripted_destroy,
    &scripted_table,
};

PMM_EXPORT const pmm_module_descriptor *const *pmm_module_entry(uint32_t *count) {
    static const pmm_module_descriptor *const modules[] = {&scripted_descriptor};
    *count = 1;
    return modules;
}
