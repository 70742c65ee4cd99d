/*
 * pymesos-modules: the master detector kind's function table.
 *
 * Whoever needs the leading master (an agent given `--master=zk://...`, a
 * standby master redirecting clients) asks a detector
 * (`--master_detector=NAME`), as Mesos' MasterDetector modules are asked.
 * The built-in detectors are `standalone` (a fixed leader) and `zookeeper`
 * (reads the `json.info_` znodes Mesos' masters publish).
 *
 * detect(): the host passes the generation it last saw (0 at first).  The
 * module returns at once when its view's generation differs, else waits up
 * to `timeout_ms` for a change; either way it writes its current generation
 * and appends the leader's MasterInfo JSON (the shape of
 * master_contender.h) to leader_json, or nothing when no master leads.  The
 * generation starts at 1 and grows by one at every change of leader
 * (including to and from "none"), so every change is reported, even a
 * change and its reversal between two calls.  A module may return early
 * with the same generation.
 *
 * The host checks the answer: an object with "address": {"ip" or
 * "hostname", "port"}; anything else fails the call.
 *
 * Threading: detect() may be called from several host threads at once; the
 * module synchronises its own state.  No callback crosses the ABI.
 */
#ifndef PYMESOS_MODULES_MASTER_DETECTOR_H
#define PYMESOS_MODULES_MASTER_DETECTOR_H

#include "pymesos_modules/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMM_CDEF_BEGIN master_detector */

typedef struct pmm_master_detector_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    /* Wait up to timeout_ms for a leader newer than known_generation (see above). */
    pmm_status (*detect)(void *instance, uint64_t known_generation, uint32_t timeout_ms,
                         uint64_t *generation, pmm_output *leader_json, pmm_error *error);
} pmm_master_detector_vtable;

/* PMM_CDEF_END master_detector */

#ifdef __cplusplus
}
#endif

#endif /* PYMESOS_MODULES_MASTER_DETECTOR_H */
