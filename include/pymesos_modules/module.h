/*
 * pymesos-modules: the C ABI every module library speaks.
 *
 * A module library exports exactly one function, pmm_module_entry(), which
 * returns its module descriptors.  The host checks each descriptor (magic,
 * ABI major, struct size, ABI minor, required fields, kind) before it runs
 * any module code, then calls compatible() and create().
 *
 * Compatibility rules (why they are what they are):
 *  - ABI major must match exactly: a major bump means an incompatible layout.
 *  - ABI minor of a module must be <= the host's: structs only grow at their
 *    end within a major, so an older module is always readable by a newer
 *    host, while a newer module may rely on host API entries we lack.
 *  - Every struct that crosses the boundary starts with (or carries) its own
 *    size, so either side can tell which trailing fields the other knows.
 *  - Only fixed-width integers, doubles, const char* and flat arrays cross.
 *    No C++ types, no Python objects, no exceptions.
 *
 * The block between PMM_CDEF_BEGIN and PMM_CDEF_END is free of preprocessor
 * directives on purpose: the build extracts it verbatim as the cffi cdef, so
 * this header is the one source of truth for the Python side as well.
 */
#ifndef PYMESOS_MODULES_MODULE_H
#define PYMESOS_MODULES_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PMM_EXPORT __declspec(dllexport)
#else
#define PMM_EXPORT __attribute__((visibility("default")))
#endif

/* PMM_CDEF_BEGIN module */

/* Constants of this release of the ABI. */
enum pmm_abi_constants {
    PMM_MAGIC = 0x504D4D31,        /* "PMM1": tells a descriptor from garbage */
    PMM_ABI_MAJOR = 1,
    PMM_ABI_MINOR = 0,
    PMM_ERROR_CAPACITY = 1024      /* size of the error buffers the host passes */
};

/* Status codes returned by every call that can fail.  PMM_OK is zero so
 * modules can write `if (status) return status;`. */
enum pmm_status_codes {
    PMM_OK = 0,
    PMM_ERR_GENERIC = 1,        /* anything not covered below */
    PMM_ERR_INVALID = 2,        /* bad argument: unknown handle, NaN, negative amount */
    PMM_ERR_NOT_FOUND = 3,      /* the named object does not exist */
    PMM_ERR_EXISTS = 4,         /* the object already exists (duplicate add) */
    PMM_ERR_NO_MEMORY = 5,
    PMM_ERR_UNSUPPORTED = 6,    /* the module does not implement this call */
    PMM_ERR_STATE = 7           /* the call is not valid in the current state */
};

/* Module kinds.  Values are stable forever; new kinds get new numbers. */
enum pmm_kind_values {
    PMM_KIND_ALLOCATOR = 1,
    PMM_KIND_ISOLATOR = 2,
    PMM_KIND_HOOK = 3,
    PMM_KIND_ANONYMOUS = 4,
    PMM_KIND_RESOURCE_ESTIMATOR = 5,
    PMM_KIND_QOS_CONTROLLER = 6,
    PMM_KIND_AUTHORIZER = 7,
    PMM_KIND_HTTP_AUTHENTICATOR = 8,
    PMM_KIND_MASTER_CONTENDER = 9,
    PMM_KIND_MASTER_DETECTOR = 10
};

/* Log levels, mapped by the host onto Python logging levels. */
enum pmm_log_levels {
    PMM_LOG_DEBUG = 10,
    PMM_LOG_INFO = 20,
    PMM_LOG_WARNING = 30,
    PMM_LOG_ERROR = 40
};

typedef int32_t pmm_status;

/* A host-owned buffer a failing call writes a NUL-terminated message into.
 * The module must never write more than `capacity` bytes (NUL included). */
typedef struct pmm_error {
    uint32_t struct_size;
    uint32_t capacity;
    char *message;
} pmm_error;

/* One key/value pair from the module's configuration ("parameters"). */
typedef struct pmm_parameter {
    const char *key;
    const char *value;
} pmm_parameter;

typedef struct pmm_parameters {
    uint32_t struct_size;
    uint32_t count;
    const pmm_parameter *items;
} pmm_parameters;

/* A host-owned sink for variable-length output (JSON documents: hook
 * results, isolator launch info).  A call appends its output and the host
 * owns the bytes, so no allocation crosses the boundary and the module needs
 * no "call again with a bigger buffer" protocol (which would run side effects
 * twice).  append() copies the bytes; it returns PMM_OK or PMM_ERR_NO_MEMORY.
 * Valid only during the call it was passed to. */
typedef struct pmm_output {
    uint32_t struct_size;
    uint32_t reserved0;
    void *context;
    pmm_status (*append)(void *context, const char *data, uint64_t length);
} pmm_output;

/* Functions the host offers a module.  Passed to compatible() and create();
 * valid until destroy() returns.  Modules never link against the host.
 * Every function is safe to call from any thread. */
typedef struct pmm_host_api {
    uint32_t struct_size;
    uint32_t abi_major;              /* the host's ABI version */
    uint32_t abi_minor;
    uint32_t reserved0;
    void *context;                   /* opaque; pass it back on every call */
    /* Log a message under the module's logger. */
    void (*log)(void *context, int32_t level, const char *message);
    /* Nanoseconds from a monotonic clock (never goes backwards). */
    uint64_t (*monotonic_ns)(void *context);
    /* Add `delta` to the counter `name` (created at zero on first use). */
    void (*counter_add)(void *context, const char *name, double delta);
    /* Set the gauge `name` to `value`. */
    void (*gauge_set)(void *context, const char *name, double value);
} pmm_host_api;

/* Everything the host needs to know about one module.  Fields up to
 * `vtable` exist since ABI 1.0; later minors may only append. */
typedef struct pmm_module_descriptor {
    uint32_t magic;                  /* PMM_MAGIC */
    uint16_t abi_major;              /* PMM_ABI_MAJOR the module was built with */
    uint16_t abi_minor;              /* PMM_ABI_MINOR the module was built with */
    uint32_t struct_size;            /* sizeof(pmm_module_descriptor) at build time */
    uint32_t kind;                   /* one of pmm_kind_values */
    const char *name;                /* unique name used in --modules, e.g. "org_example_Foo" */
    const char *module_version;
    const char *author_name;
    const char *author_email;
    const char *description;
    /* Optional: return PMM_OK if the module can run on this host, or an
     * error code and a message saying why not.  May be NULL. */
    pmm_status (*compatible)(const pmm_host_api *host, pmm_error *error);
    /* Create one instance.  On failure return non-zero, write a message,
     * and leave *instance untouched. */
    pmm_status (*create)(const pmm_host_api *host, const pmm_parameters *parameters,
                         void **instance, pmm_error *error);
    /* Destroy an instance created by create(); called exactly once. */
    void (*destroy)(void *instance);
    /* The kind's function table; starts with its own uint32_t struct_size.
     * NULL for kinds without one (anonymous). */
    const void *vtable;
} pmm_module_descriptor;

/* The entry point: a library returns its descriptors and their count.
 * A function rather than a data symbol because dlsym() is only portable
 * for functions.  Must not allocate or have side effects. */
const pmm_module_descriptor *const *pmm_module_entry(uint32_t *count);

/* PMM_CDEF_END module */

#define PMM_ENTRY_POINT_NAME "pmm_module_entry"

/* Fill in the fixed header of a descriptor for this build of the headers. */
#define PMM_DESCRIPTOR_HEADER(kind_value)                                       \
    PMM_MAGIC, (uint16_t)PMM_ABI_MAJOR, (uint16_t)PMM_ABI_MINOR,                \
        (uint32_t)sizeof(pmm_module_descriptor), (uint32_t)(kind_value)

/* Write a formatted message into a host error buffer, always NUL-terminated
 * and truncated to its capacity.  Returns `status` for one-line returns:
 *   return pmm_error_set(err, PMM_ERR_INVALID, "bad cpus: %g", cpus); */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline pmm_status pmm_error_set(pmm_error *error, pmm_status status,
                                       const char *format, ...) {
    if (error != NULL && error->message != NULL && error->capacity > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(error->message, error->capacity, format, args);
        va_end(args);
    }
    return status;
}

/* Look up a parameter by key; NULL when absent. */
static inline const char *pmm_parameter_get(const pmm_parameters *parameters,
                                            const char *key) {
    if (parameters == NULL || parameters->items == NULL) return NULL;
    for (uint32_t i = 0; i < parameters->count; ++i) {
        if (parameters->items[i].key != NULL && strcmp(parameters->items[i].key, key) == 0)
            return parameters->items[i].value;
    }
    return NULL;
}

/* Append a NUL-terminated string to a host output sink. */
static inline pmm_status pmm_output_write(const pmm_output *out, const char *text) {
    if (out == NULL || out->append == NULL) return PMM_ERR_INVALID;
    return out->append(out->context, text, (uint64_t)strlen(text));
}

/* True when the host API table is new enough to hold `field`. */
#define PMM_HOST_HAS(host, field)                                               \
    ((host) != NULL &&                                                          \
     (host)->struct_size >= offsetof(pmm_host_api, field) + sizeof((host)->field) && \
     (host)->field != NULL)

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PYMESOS_MODULES_MODULE_H */
