/* A native master contender and detector for the wrapper tests: the contender
 * is elected when it contends (standalone), the detector reports the leader
 * given as its `leader` parameter (MasterInfo JSON; none when absent).  The
 * contender's watch() really waits, on a condition variable, so the host's
 * thread-and-timeout protocol is exercised; `bad_state` makes it answer a
 * state the ABI does not have. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pymesos_modules/master_contender.h"
#include "pymesos_modules/master_detector.h"

typedef struct contender {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    uint64_t generation;
    int32_t state;
    int bad_state;
} contender;

static void deadline_after(uint32_t timeout_ms, struct timespec *at) {
    clock_gettime(CLOCK_REALTIME, at);
    at->tv_sec += timeout_ms / 1000;
    at->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (at->tv_nsec >= 1000000000L) {
        at->tv_sec += 1;
        at->tv_nsec -= 1000000000L;
    }
}

static pmm_status contender_create(const pmm_host_api *host, const pmm_parameters *parameters,
                                   void **instance, pmm_error *error) {
    (void)host;
    contender *self = calloc(1, sizeof *self);
    if (self == NULL) return pmm_error_set(error, PMM_ERR_NO_MEMORY, "zoo_Contender: no memory");
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->changed, NULL);
    self->generation = 1;
    self->state = PMM_CONTENDER_STANDBY;
    self->bad_state = pmm_parameter_get(parameters, "bad_state") != NULL;
    *instance = self;
    return PMM_OK;
}

static void contender_destroy(void *instance) {
    contender *self = instance;
    pthread_cond_destroy(&self->changed);
    pthread_mutex_destroy(&self->lock);
    free(self);
}

static void contender_set(contender *self, int32_t state) {
    pthread_mutex_lock(&self->lock);
    if (self->state != state && self->state != PMM_CONTENDER_LOST) {
        self->state = state;
        self->generation += 1;
        pthread_cond_broadcast(&self->changed);
    }
    pthread_mutex_unlock(&self->lock);
}

static pmm_status contender_contend(void *instance, const char *master_info_json,
                                    pmm_error *error) {
    if (master_info_json == NULL || master_info_json[0] != '{')
        return pmm_error_set(error, PMM_ERR_INVALID, "zoo_Contender: MasterInfo is not JSON");
    contender_set(instance, PMM_CONTENDER_ELECTED);
    return PMM_OK;
}

static pmm_status contender_watch(void *instance, uint64_t known, uint32_t timeout_ms,
                                  uint64_t *generation, int32_t *state, pmm_error *error) {
    (void)error;
    contender *self = instance;
    struct timespec at;
    deadline_after(timeout_ms, &at);
    pthread_mutex_lock(&self->lock);
    while (self->generation == known) {
        if (pthread_cond_timedwait(&self->changed, &self->lock, &at) != 0) break;
    }
    *generation = self->generation;
    *state = self->bad_state ? 7 : self->state;
    pthread_mutex_unlock(&self->lock);
    return PMM_OK;
}

static pmm_status contender_withdraw(void *instance, pmm_error *error) {
    (void)error;
    contender_set(instance, PMM_CONTENDER_LOST);
    return PMM_OK;
}

static const pmm_master_contender_vtable contender_table = {
    sizeof(pmm_master_contender_vtable), 0, contender_contend, contender_watch,
    contender_withdraw};

static const pmm_module_descriptor contender_descriptor = {
    PMM_DESCRIPTOR_HEADER(PMM_KIND_MASTER_CONTENDER),
    "zoo_Contender", "0.1.0", "zoo", "zoo@example.org",
    "elected when it contends", NULL, contender_create, contender_destroy, &contender_table};

/* The detector's instance is its leader's JSON (or NULL: no leader). */
static pmm_status detector_create(const pmm_host_api *host, const pmm_parameters *parameters,
                                  void **instance, pmm_error *error) {
    (void)host;
    const char *leader = pmm_parameter_get(parameters, "leader");
    char *copy = NULL;
    if (leader != NULL) {
        size_t length = strlen(leader) + 1;
        copy = malloc(length);
        if (copy == NULL) return pmm_error_set(error, PMM_ERR_NO_MEMORY, "zoo_Detector: no memory");
        memcpy(copy, leader, length);
    }
    *instance = copy;
    return PMM_OK;
}

static void detector_destroy(void *instance) { free(instance); }

static pmm_status detector_detect(void *instance, uint64_t known, uint32_t timeout_ms,
                                  uint64_t *generation, pmm_output *leader_json,
                                  pmm_error *error) {
    (void)error;
    if (known == 1) {  /* nothing ever changes: wait out the timeout as a real one would */
        struct timespec nap = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&nap, NULL);
    }
    *generation = 1;
    return instance == NULL ? PMM_OK : pmm_output_write(leader_json, instance);
}

static const pmm_master_detector_vtable detector_table = {
    sizeof(pmm_master_detector_vtable), 0, detector_detect};

static const pmm_module_descriptor detector_descriptor = {
    PMM_DESCRIPTOR_HEADER(PMM_KIND_MASTER_DETECTOR),
    "zoo_Detector", "0.1.0", "zoo", "zoo@example.org",
    "reports its leader parameter", NULL, detector_create, detector_destroy, &detector_table};

static const pmm_module_descriptor *const descriptors[] = {&contender_descriptor,
                                                           &detector_descriptor};

PMM_EXPORT const pmm_module_descriptor *const *pmm_module_entry(uint32_t *count) {
    *count = 2;
    return descriptors;
}
