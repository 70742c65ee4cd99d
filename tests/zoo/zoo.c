/* One source, many deliberately broken module libraries: each zoo variant is
 * this file compiled with different ZOO_* definitions (see CMakeLists.txt),
 * so the broken libraries differ from the good one in exactly one way. */
#include "pymesos_modules/allocator.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ZOO_MAGIC
#define ZOO_MAGIC PMM_MAGIC
#endif
#ifndef ZOO_MAJOR
#define ZOO_MAJOR PMM_ABI_MAJOR
#endif
#ifndef ZOO_MINOR
#define ZOO_MINOR PMM_ABI_MINOR
#endif
#ifndef ZOO_SIZE
#define ZOO_SIZE sizeof(pmm_module_descriptor)
#endif
#ifndef ZOO_KIND
#define ZOO_KIND PMM_KIND_ANONYMOUS
#endif
#ifndef ZOO_NAME
#define ZOO_NAME "zoo_Good"
#endif

static int zoo_token;

#ifdef ZOO_HANG
/* A library whose constructor never returns: loading it hangs its host. */
__attribute__((constructor)) static void zoo_hang(void) {
    for (;;) pause();
}
#endif

/* Crashes on purpose: a module bug that takes its host process down. */
__attribute__((unused)) static void zoo_crash(void) {
#ifdef ZOO_ABORT
    abort();
#else
    raise(SIGSEGV);
#endif
}

#if defined(ZOO_INCOMPATIBLE)
static pmm_status zoo_compatible(const pmm_host_api *host, pmm_error *error) {
    (void)host;
    return pmm_error_set(error, PMM_ERR_UNSUPPORTED, "zoo needs a GPU and this host has none");
}
#define ZOO_COMPATIBLE zoo_compatible
#elif defined(ZOO_CRASH_IN_COMPATIBLE)
static pmm_status zoo_compatible(const pmm_host_api *host, pmm_error *error) {
    (void)host;
    (void)error;
    zoo_crash();
    return PMM_OK;
}
#define ZOO_COMPATIBLE zoo_compatible
#else
#define ZOO_COMPATIBLE NULL
#endif

static pmm_status zoo_create(const pmm_host_api *host, const pmm_parameters *parameters,
                             void **instance, pmm_error *error) {
    (void)host;
#ifdef ZOO_CREATE_FAILS
    (void)parameters;
    (void)instance;
    (void)zoo_token;
    return pmm_error_set(error, PMM_ERR_INVALID, "zoo: parameter 'size' is required");
#else
    const char *fail = pmm_parameter_get(parameters, "fail");
    if (fail != NULL) return pmm_error_set(error, PMM_ERR_INVALID, "zoo: asked to fail: %s", fail);
#ifdef ZOO_CRASH_IN_CREATE
    zoo_crash();
#endif
    *instance = &zoo_token;
    return PMM_OK;
#endif
}

static void zoo_destroy(void *instance) { (void)instance; }

#ifdef ZOO_OLD_ALLOCATOR
/* An allocator built before allocate_agents was appended to the table: its
 * struct_size ends at stats, so the host must load it and never call past
 * that.  Its one cycle offers agent 42 to framework 7, whatever is asked. */
static pmm_status zoo_initialize(void *self, const pmm_allocator_options *options,
                                 pmm_error *error) {
    (void)self;
    (void)options;
    (void)error;
    return PMM_OK;
}

static const pmm_offer_row zoo_row = {7, 42, 0, PMM_UNRESERVED_HANDLE, 0, 0};
static const double zoo_values[1] = {1.0};

static pmm_status zoo_allocate(void *self, double now, pmm_allocation_result *result,
                               pmm_error *error) {
    (void)self;
    (void)now;
    (void)error;
    result->row_count = 1;
    result->rows = &zoo_row;
    result->values = zoo_values;
    return PMM_OK;
}

static const pmm_allocator_vtable zoo_table = {
    .struct_size = (uint32_t)offsetof(pmm_allocator_vtable, allocate_agents),
    .initialize = zoo_initialize,
    .allocate = zoo_allocate,
};
#define ZOO_VTABLE (&zoo_table)
#else
#define ZOO_VTABLE NULL
#endif

#ifdef ZOO_HUGE_NAME
/* Its name is filled in by the entry point: 16 MiB of 'a'. */
#define ZOO_DESCRIPTOR_CONST
#else
#define ZOO_DESCRIPTOR_CONST const
#endif

static ZOO_DESCRIPTOR_CONST pmm_module_descriptor zoo_descriptor = {
    ZOO_MAGIC, ZOO_MAJOR, ZOO_MINOR, (uint32_t)(ZOO_SIZE), ZOO_KIND,
    ZOO_NAME, "0.1.0", "Zoo Keeper", "zoo@example.invalid", "A module of the test zoo",
    ZOO_COMPATIBLE, zoo_create, zoo_destroy, ZOO_VTABLE,
};

#ifdef ZOO_DUPLICATE
/* A second descriptor claiming the first one's name. */
static const pmm_module_descriptor zoo_twin_descriptor = {
    PMM_MAGIC, PMM_ABI_MAJOR, PMM_ABI_MINOR, (uint32_t)sizeof(pmm_module_descriptor),
    PMM_KIND_ANONYMOUS, ZOO_NAME, "0.2.0", "Zoo Keeper", "zoo@example.invalid", "The other one",
    NULL, zoo_create, zoo_destroy, NULL,
};
#endif

#ifdef ZOO_WITH_FUTURE_KIND
/* A second module of a kind only a newer host knows: must not hide zoo_Good. */
static const pmm_module_descriptor zoo_future_descriptor = {
    PMM_MAGIC, PMM_ABI_MAJOR, PMM_ABI_MINOR, (uint32_t)sizeof(pmm_module_descriptor), 42,
    "zoo_Future", "0.1.0", "Zoo Keeper", "zoo@example.invalid", "A module from the future",
    NULL, zoo_create, zoo_destroy, NULL,
};
#endif

#ifdef ZOO_NO_ENTRY
PMM_EXPORT uint32_t zoo_something_else(void) { return zoo_descriptor.magic; }
#else
PMM_EXPORT const pmm_module_descriptor *const *pmm_module_entry(uint32_t *count) {
#ifdef ZOO_HUGE_NAME
    static char *huge;
    if (huge == NULL) {
        size_t size = (size_t)16 << 20;
        huge = malloc(size + 1);
        if (huge == NULL) abort();
        memset(huge, 'a', size);
        huge[size] = '\0';
        zoo_descriptor.name = huge;
    }
#endif
#if defined(ZOO_WITH_FUTURE_KIND)
    static const pmm_module_descriptor *const modules[] = {&zoo_future_descriptor,
                                                           &zoo_descriptor};
    *count = 2;
#elif defined(ZOO_DUPLICATE)
    static const pmm_module_descriptor *const modules[] = {&zoo_descriptor, &zoo_twin_descriptor};
    *count = 2;
#else
    static const pmm_module_descriptor *const modules[] = {&zoo_descriptor};
#ifdef ZOO_GARBAGE_COUNT
    *count = 0xFFFFFFFFu; /* a count that does not match the array */
#else
    *count = 1;
#endif
#endif
    return modules;
}
#endif
