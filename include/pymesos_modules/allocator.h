/*
 * pymesos-modules: the allocator kind's function table.
 *
 * The master maps framework, agent and role ids to dense integer handles
 * (0, 1, 2, ...) and registers scalar resource names once in initialize();
 * from then on a resource vector is `resource_count` doubles in that order.
 * Ranges and sets (ports) stay the master's bookkeeping.
 *
 * Resources live in pools on an agent: the unreserved pool, one reserved
 * pool per role, and the revocable pool.  A (framework, agent, role) offer
 * may draw on several pools, so allocate() reports one row per
 * (framework, agent, role, pool) and the master groups rows into offers.
 *
 * Threading: one instance is not re-entrant; the host serialises calls on
 * an instance (allocate() runs off the event loop, but never concurrently
 * with another call on the same instance).  Instances share no state.
 *
 * Every call that can fail returns a pmm_status, writes a message into the
 * host's error buffer, and changes no state when it fails.
 *
 * Versioning: pmm_allocator_vtable only grows at its end.  A module sets its
 * struct_size to sizeof(pmm_allocator_vtable) of the headers it was built
 * with, and the host calls a field only when that size covers it and it is
 * not NULL, so a module built before a call existed keeps loading.  A C++
 * module that fills the table positionally (no designated initializers)
 * gets a missing-initializer warning for a new field when rebuilt: add it,
 * as NULL if the module does not implement it.
 */
#ifndef PYMESOS_MODULES_ALLOCATOR_H
#define PYMESOS_MODULES_ALLOCATOR_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN allocator */

typedef uint32_t pmm_handle;

enum pmm_allocator_constants {
    /* pool id of unreserved resources; also "no role" */
    PMM_UNRESERVED = -1,
    /* role argument of suppress()/revive() meaning every role of the framework */
    PMM_ALL_ROLES = -1
};

/* Framework capabilities (bit flags), as in Mesos' FrameworkInfo. */
enum pmm_framework_capabilities {
    PMM_CAP_REVOCABLE_RESOURCES = 1,
    PMM_CAP_GPU_RESOURCES = 2,
    PMM_CAP_MULTI_ROLE = 4,
    PMM_CAP_RESERVATION_REFINEMENT = 8
};

/* Offer row flags. */
enum pmm_offer_flags {
    PMM_OFFER_REVOCABLE = 1
};

typedef struct pmm_allocator_options {
    uint32_t struct_size;
    uint32_t resource_count;
    const char *const *resource_names;     /* resource_count names, e.g. "cpus" */
    /* Minimum allocatable resources: min_allocatable_count alternatives, each
     * resource_count doubles (0 = not required); an agent's leftover is
     * allocatable when it covers any one alternative.  Count 0 means Mesos'
     * default (cpus:0.01 | mem:32). */
    uint32_t min_allocatable_count;
    uint32_t reserved0;
    const double *min_allocatable;
    /* resource_count flags (may be NULL): 1 = left out of fair-share
     * (dominant share) computation, e.g. gpus in some clusters. */
    const uint8_t *fairness_excluded;
    uint64_t random_seed;                  /* seeds the agent shuffle */
    double allocation_interval;            /* seconds; minimum filter duration */
    uint8_t filter_gpu_resources;          /* 1: GPU agents only to GPU_RESOURCES frameworks */
    uint8_t reserved1[7];
} pmm_allocator_options;

typedef struct pmm_framework_info {
    uint32_t struct_size;
    uint32_t role_count;
    const pmm_handle *roles;               /* role_count role handles */
    const uint8_t *suppressed;             /* role_count flags, may be NULL */
    uint32_t capabilities;                 /* pmm_framework_capabilities bits */
    uint8_t active;                        /* 0: added deactivated (disconnected) */
    uint8_t reserved0[3];
} pmm_framework_info;

/* Resources a framework already uses (or has been offered) on an agent. */
typedef struct pmm_allocation {
    pmm_handle framework;
    pmm_handle role;
    pmm_handle pool;                       /* reservation role, or PMM_UNRESERVED */
    uint32_t flags;                        /* PMM_OFFER_REVOCABLE: from the revocable pool */
    const double *resources;               /* resource_count doubles */
} pmm_allocation;

typedef struct pmm_agent_info {
    uint32_t struct_size;
    uint32_t reservation_count;
    const double *unreserved;              /* resource_count doubles: unreserved total */
    const pmm_handle *reservation_roles;   /* reservation_count roles */
    const double *reservations;            /* reservation_count * resource_count doubles */
    const double *revocable;               /* resource_count doubles, or NULL for none */
    uint32_t allocation_count;
    uint8_t active;                        /* 0: added deactivated */
    uint8_t reserved0[3];
    const pmm_allocation *allocations;     /* resources already in use on the agent */
} pmm_agent_info;

/* One row of allocate()'s output: what one framework is offered, in one
 * role, from one pool of one agent.  Its resources are row_index-th
 * resource_count doubles of pmm_allocation_result.values. */
typedef struct pmm_offer_row {
    pmm_handle framework;
    pmm_handle agent;
    pmm_handle role;
    pmm_handle pool;                       /* reservation role, or PMM_UNRESERVED */
    uint32_t flags;                        /* PMM_OFFER_REVOCABLE */
    uint32_t reserved0;
} pmm_offer_row;

/* Output of allocate(): buffers owned by the allocator, valid until the next
 * call on the same instance, so the host reads them without copying. */
typedef struct pmm_allocation_result {
    uint32_t struct_size;
    uint32_t row_count;
    const pmm_offer_row *rows;
    const double *values;                  /* row_count * resource_count doubles */
} pmm_allocation_result;

typedef struct pmm_allocator_stats {
    uint32_t struct_size;
    uint32_t reserved0;
    uint64_t allocation_runs;              /* cycles run (allocate, allocate_agents) */
    uint64_t offers_made;                  /* rows produced, all cycles */
    uint64_t filtered_skips;               /* (framework, agent) pairs skipped by a filter */
    uint64_t frameworks;
    uint64_t agents;
    uint64_t roles;
    uint64_t active_filters;
    double last_allocation_ms;             /* duration of the last cycle */
} pmm_allocator_stats;

typedef struct pmm_allocator_vtable {
    uint32_t struct_size;
    uint32_t reserved0;

    pmm_status (*initialize)(void *self, const pmm_allocator_options *options, pmm_error *error);

    /* Roles are declared once, with their full path name ("eng/ml/batch");
     * ancestors are implied by the name. */
    pmm_status (*add_role)(void *self, pmm_handle role, const char *name, pmm_error *error);

    pmm_status (*add_framework)(void *self, pmm_handle framework, const pmm_framework_info *info,
                                pmm_error *error);
    pmm_status (*remove_framework)(void *self, pmm_handle framework, pmm_error *error);
    pmm_status (*activate_framework)(void *self, pmm_handle framework, pmm_error *error);
    pmm_status (*deactivate_framework)(void *self, pmm_handle framework, pmm_error *error);
    pmm_status (*update_framework)(void *self, pmm_handle framework, const pmm_framework_info *info,
                                   pmm_error *error);

    pmm_status (*add_agent)(void *self, pmm_handle agent, const pmm_agent_info *info,
                            pmm_error *error);
    pmm_status (*remove_agent)(void *self, pmm_handle agent, pmm_error *error);
    pmm_status (*activate_agent)(void *self, pmm_handle agent, pmm_error *error);
    pmm_status (*deactivate_agent)(void *self, pmm_handle agent, pmm_error *error);
    /* Replace the agent's totals (e.g. after a dynamic reservation or a new
     * revocable estimate); its current allocations are kept. */
    pmm_status (*update_agent)(void *self, pmm_handle agent, const pmm_agent_info *info,
                               pmm_error *error);

    /* Give back resources allocated to (framework, role) on agent, taken from
     * `pool` (and the revocable pool when flags has PMM_OFFER_REVOCABLE).
     * refuse_seconds > 0 installs a filter until now + max(refuse_seconds,
     * allocation_interval) that blocks offers which are a subset of these. */
    pmm_status (*recover_resources)(void *self, pmm_handle framework, pmm_handle agent,
                                    pmm_handle role, pmm_handle pool, uint32_t flags,
                                    const double *resources, double refuse_seconds, double now,
                                    pmm_error *error);

    /* role may be PMM_ALL_ROLES.  revive() also clears the framework's filters. */
    pmm_status (*suppress)(void *self, pmm_handle framework, pmm_handle role, pmm_error *error);
    pmm_status (*revive)(void *self, pmm_handle framework, pmm_handle role, pmm_error *error);

    pmm_status (*update_weights)(void *self, uint32_t count, const pmm_handle *roles,
                                 const double *weights, pmm_error *error);
    /* guarantees and limits are resource_count doubles; a limit of +inf
     * means unlimited. */
    pmm_status (*update_quota)(void *self, pmm_handle role, const double *guarantees,
                               const double *limits, pmm_error *error);

    pmm_status (*pause)(void *self, pmm_error *error);
    pmm_status (*resume)(void *self, pmm_error *error);

    /* Run one allocation cycle at time `now` (seconds, host clock) over every
     * active agent. */
    pmm_status (*allocate)(void *self, double now, pmm_allocation_result *result,
                           pmm_error *error);

    pmm_status (*stats)(void *self, pmm_allocator_stats *stats, pmm_error *error);

    /* ---- Appended after ABI 1.0: a table whose struct_size ends before a
     * field does not have it, and a NULL entry means the same.  The host
     * checks both before calling, so modules built against older headers
     * load and run unchanged. ---- */

    /* Run one allocation cycle at time `now` over the active agents among
     * `agents` (count handles; NULL only when count is 0), with the same
     * rules as allocate() restricted to those agents: the master batches
     * events about a few agents into one cycle over the union of their
     * agents (Mesos' allocation candidates) instead of visiting them all.
     * The handles are a set: order does not matter and duplicates are fine;
     * inactive agents are skipped as in allocate().  An unknown handle fails
     * the call with PMM_ERR_NOT_FOUND naming it, before any state changes.
     * Cluster-wide quantities (dominant shares, quota headroom) still count
     * every agent, not only the candidates.  A module without this call gets
     * allocate() instead: a superset of the candidates, never fewer offers. */
    pmm_status (*allocate_agents)(void *self, double now, uint32_t count,
                                  const pmm_handle *agents, pmm_allocation_result *result,
                                  pmm_error *error);
} pmm_allocator_vtable;

/* PMM_CDEF_END allocator */

/* The enum constants above are ints (C11 enums must fit an int); compare
 * handles against these typed forms to stay free of sign-compare warnings. */
#define PMM_UNRESERVED_HANDLE ((pmm_handle)0xFFFFFFFFu)
#define PMM_ALL_ROLES_HANDLE ((pmm_handle)0xFFFFFFFFu)

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PYMESOS_MODULES_ALLOCATOR_H */
