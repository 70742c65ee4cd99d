/*
 * pymesos-modules: the master contender kind's function table.
 *
 * A master (`--master_contender=NAME`) enters the leader election through
 * its contender, as Mesos' MasterContender modules do: contend() once with
 * this master's MasterInfo, then watch() for the outcome.  The built-in
 * contenders are `standalone` (always elected) and `zookeeper` (Mesos' znode
 * layout, written in Python on kazoo).
 *
 * master_info_json (UTF-8, never NULL): Mesos' MasterInfo as JSON,
 *   {"id": "...", "ip": 16777343, "port": 5050, "pid": "master@127.0.0.1:5050",
 *    "hostname": "...", "version": "...",
 *    "address": {"ip": "127.0.0.1", "hostname": "...", "port": 5050}}
 *   ("ip" is the IPv4 address as a uint32 in network byte order, as Mesos
 *   writes it).  A ZooKeeper contender publishes these bytes unchanged, so
 *   Mesos' and pymesos' detectors can read them.
 *
 * States (*state of watch()):
 *   PMM_CONTENDER_STANDBY  in the election but not leading: not yet decided,
 *                          another master leads, or the contender cannot tell
 *                          right now (e.g. its ZooKeeper connection is down).
 *                          A master that led and reads STANDBY stops leading
 *                          at once.
 *   PMM_CONTENDER_ELECTED  this master leads.
 *   PMM_CONTENDER_LOST     the candidacy has ended (session expired,
 *                          withdrawn); it never comes back by itself.
 *
 * watch() is the only way news travels, so no callback ever crosses the ABI:
 * the host calls it from a thread of its own with the generation it last
 * saw (0 at first).  The module returns at once when its state's generation
 * differs from `known_generation`, else waits up to `timeout_ms` for a
 * change; either way it writes its current generation and state.  The
 * generation starts at 1 and grows by one at every change of state, so a
 * change and its reversal between two calls are still seen as a change.
 * A module may return early (a spurious wake-up) with the same generation.
 *
 * Threading: watch() runs on a host thread while contend()/withdraw() may
 * be called from another; the module synchronises its own state.  The
 * host calls withdraw() (leave the election) before destroy().
 */
#ifndef PYMESOS_MODULES_MASTER_CONTENDER_H
#define PYMESOS_MODULES_MASTER_CONTENDER_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN master_contender */

enum pmm_contender_states {
    PMM_CONTENDER_STANDBY = 0,
    PMM_CONTENDER_ELECTED = 1,
    PMM_CONTENDER_LOST = 2
};

typedef struct pmm_master_contender_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    /* Enter the election as this master.  Called once per instance. */
    pmm_status (*contend)(void *instance, const char *master_info_json, pmm_error *error);
    /* Wait up to timeout_ms for a state newer than known_generation (see above). */
    pmm_status (*watch)(void *instance, uint64_t known_generation, uint32_t timeout_ms,
                        uint64_t *generation, int32_t *state, pmm_error *error);
    /* Leave the election (idempotent); the state becomes PMM_CONTENDER_LOST. */
    pmm_status (*withdraw)(void *instance, pmm_error *error);
} pmm_master_contender_vtable;

/* PMM_CDEF_END master_contender */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_MASTER_CONTENDER_H */
