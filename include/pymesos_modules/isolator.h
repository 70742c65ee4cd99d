/*
 * pymesos-modules: the isolator kind's function table.
 *
 * An isolator takes part in every task the agent runs (`--isolation=a,b`, in
 * that order), at the moments Mesos' isolators do:
 *
 *   prepare(config)        before the task process exists: may answer with
 *                          environment variables, resource limits (applied
 *                          with setrlimit in the child before exec) and a
 *                          working directory
 *   isolate(pid)           the task process exists (it leads its own process
 *                          group) but may not have exec'd yet
 *   update(resources)      the task's resources changed (also once at launch)
 *   usage()                statistics for /monitor/statistics
 *   watch(exited, status)  polled about once a second while the task runs,
 *                          and once more after it exited with its waitpid()
 *                          status: report a limitation (the task exceeded
 *                          what it may use) and the agent fails the task
 *   cleanup()              the task is gone; forget the container
 *   recover(ids)           (optional, appended) once after create() when the
 *                          agent starts, before any other call: the
 *                          containers a previous agent left running that this
 *                          agent takes over; whatever else the module finds
 *                          from before (a cgroup of a crashed agent) is an
 *                          orphan to destroy.  prepare/isolate/update then
 *                          come again for each taken-over container, so
 *                          prepare() must adopt what it finds in place.
 *
 * Containers are named by the agent's container id (a NUL-terminated UTF-8
 * string).  A call naming a container the isolator does not know returns
 * PMM_ERR_NOT_FOUND.  Resources are flat: `count` names and `count` values
 * (cpus, mem in MB, disk in MB, gpus, any custom scalar).
 *
 * Why structs and flat arrays in, JSON out: what every isolator needs (ids,
 * sandbox, scalar resources) arrives as plain C values, so a C isolator
 * needs no JSON parser; update() carries only resources, so it takes them
 * flat too.  The TaskInfo is passed as JSON as well (task_json), for the
 * isolators that read more of the task (e.g. container.rlimit_info).
 * Answers are variable-sized documents, hence a host-owned pmm_output.
 * Statistics are one fixed struct of doubles: the host reads it without
 * parsing on every /monitor/statistics request.
 *
 * Documents an isolator answers with go to a pmm_output as JSON:
 *   launch info:  {"environment": {"K": "V"},
 *                  "rlimits": [{"type": "RLMT_AS", "soft": 1048576, "hard": 1048576}],
 *                  "working_directory": "/path",
 *                  "cgroups": ["/sys/fs/cgroup/memory/pymesos_modules/<id>"]}
 *                 (every field optional; a missing soft/hard means unlimited;
 *                 types are Mesos' RLimitInfo names RLMT_AS, RLMT_CPU,
 *                 RLMT_NOFILE, ...; "cgroups" are cgroup folders the task
 *                 process joins between fork and exec, by writing to their
 *                 cgroup.procs, so nothing it runs or forks is ever outside
 *                 them)
 *   limitation:   {"reason": "REASON_CONTAINER_LIMITATION_MEMORY",
 *                  "message": "...", "resources": {"mem": 64}}
 *                 (write nothing when there is no limitation)
 *
 * Statistics use NaN for "not measured by this isolator": the agent merges
 * the statistics of every isolator and drops NaN fields.
 *
 * Threading: calls may come from any thread (the agent may move them to a
 * worker thread), but the host never makes two calls on one instance at once
 * (the Python wrapper serializes them).  Two instances, of this module or of
 * another module in the same library, may be called at the same time: state
 * shared between instances (a static cache, a global table) needs a lock.
 * watch() and usage() run about once a second per task: keep them short and
 * never block on the task.
 *
 * Versioning: the host sets statistics->struct_size to the size it knows.
 * Fields appended later are simply left NaN by older modules, and a module
 * built against newer headers writes only the fields that fit in the host's
 * struct_size (isolator.hpp does this for C++ modules), so neither side has
 * to be rebuilt.  The function table grows the same way (recover()).
 */
#ifndef PYMESOS_MODULES_ISOLATOR_H
#define PYMESOS_MODULES_ISOLATOR_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN isolator */

/* What prepare() learns about a container. */
typedef struct pmm_container_config {
    uint32_t struct_size;
    uint32_t resource_count;
    const char *container_id;
    const char *task_id;
    const char *framework_id;
    const char *sandbox;                  /* absolute path; exists already */
    const char *user;                     /* NULL when the task names none */
    const char *const *resource_names;    /* resource_count names */
    const double *resource_values;        /* resource_count amounts */
    const char *task_json;                /* the Mesos TaskInfo as launched (JSON) */
} pmm_container_config;

/* Mesos ResourceStatistics fields the agent reports; NaN = not measured. */
typedef struct pmm_resource_statistics {
    uint32_t struct_size;
    uint32_t reserved0;
    double timestamp;                     /* seconds since the epoch */
    double cpus_user_time_secs;
    double cpus_system_time_secs;
    double cpus_limit;
    double mem_rss_bytes;
    double mem_limit_bytes;
    double processes;
    double threads;
    /* Appended after ABI 1.0 (a host sets struct_size; a module writes only
     * the fields that fit in it): cgroup figures, Mesos' names. */
    double cpus_nr_periods;               /* CFS enforcement periods elapsed */
    double cpus_nr_throttled;             /* periods in which the group was throttled */
    double cpus_throttled_time_secs;      /* total time throttled */
    double mem_total_bytes;               /* all memory charged to the container */
    double mem_cache_bytes;               /* page cache charged to it */
    double mem_soft_limit_bytes;
} pmm_resource_statistics;

typedef struct pmm_isolator_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    pmm_status (*prepare)(void *instance, const pmm_container_config *config,
                          pmm_output *launch_info_json, pmm_error *error);
    pmm_status (*isolate)(void *instance, const char *container_id, int64_t pid,
                          pmm_error *error);
    pmm_status (*update)(void *instance, const char *container_id, uint32_t resource_count,
                         const char *const *resource_names, const double *resource_values,
                         pmm_error *error);
    /* The host fills `statistics` with NaN (and sets struct_size) before the call. */
    pmm_status (*usage)(void *instance, const char *container_id,
                        pmm_resource_statistics *statistics, pmm_error *error);
    pmm_status (*watch)(void *instance, const char *container_id, int32_t exited,
                        int32_t wait_status, pmm_output *limitation_json, pmm_error *error);
    pmm_status (*cleanup)(void *instance, const char *container_id, pmm_error *error);

    /* ---- Appended after ABI 1.0: a table whose struct_size ends before a
     * field does not have it, and a NULL entry means the same.  The host
     * checks both before calling, so isolators built against older headers
     * load and run unchanged. ---- */

    /* The agent started and takes over `count` containers (their ids; NULL
     * only when count is 0) from a previous agent's checkpoint; see the
     * comment at the top.  Destroying orphans is this call's job: a module
     * without it keeps nothing across agent restarts. */
    pmm_status (*recover)(void *instance, uint32_t count, const char *const *container_ids,
                          pmm_error *error);
} pmm_isolator_vtable;

/* PMM_CDEF_END isolator */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_ISOLATOR_H */
