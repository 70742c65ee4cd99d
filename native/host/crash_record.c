/* The crash record: which module call was running when a fatal signal hit.
 *
 * In-process modules can crash their host, as in Mesos; what a crashed master
 * or agent must still leave is a last line naming the library, module and
 * call at fault.  The host writes, per thread, a pointer to a ready-made label
 * ("<library>: module '<name>': create()") into the slot pmm_crash_slot()
 * returns before each call into module code and clears it after: one pointer
 * store each way, so hot calls such as allocate() pay next to nothing.  The
 * handler installed by pmm_crash_install() reads the slot of the thread that
 * faulted, writes one line with write(2) only (async-signal-safe), puts the
 * previous handler back and raises the signal again, so the process still
 * dies of it (and a core dump or a sanitizer's report still happens).
 *
 * The host installs this handler first and Python's faulthandler after it:
 * faulthandler dumps the Python stacks, then re-raises into this handler,
 * so the record is the last thing on stderr. */
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#define PMM_CRASH_EXPORT __attribute__((visibility("default")))

static __thread const char *pmm_current_call;

static const int pmm_fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define PMM_FATAL_COUNT (sizeof(pmm_fatal_signals) / sizeof(pmm_fatal_signals[0]))
static struct sigaction pmm_previous[PMM_FATAL_COUNT];

/* The calling thread's slot; call it once per thread before the handler may read it. */
PMM_CRASH_EXPORT const char **pmm_crash_slot(void) { return &pmm_current_call; }

static void pmm_put(const char *text) {
    size_t length = strlen(text);
    while (length > 0) {
        ssize_t written = write(STDERR_FILENO, text, length);
        if (written <= 0) return;
        text += written;
        length -= (size_t)written;
    }
}

static const char *pmm_signal_name(int signum) {
    switch (signum) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS: return "SIGBUS";
        case SIGFPE: return "SIGFPE";
        case SIGILL: return "SIGILL";
        case SIGABRT: return "SIGABRT";
        default: return "a fatal signal";
    }
}

static void pmm_crash_handler(int signum, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    const char *call = pmm_current_call;
    pmm_put("\npymesos-modules: ");
    pmm_put(pmm_signal_name(signum));
    if (call != NULL) {
        pmm_put(" in module code: ");
        pmm_put(call);
        pmm_put("\n");
    } else {
        pmm_put(" outside module code (no module call was running in the thread that died)\n");
    }
    for (size_t i = 0; i < PMM_FATAL_COUNT; i++) {
        if (pmm_fatal_signals[i] == signum) sigaction(signum, &pmm_previous[i], NULL);
    }
    raise(signum);
}

/* Install the handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT; 0 on success. */
PMM_CRASH_EXPORT int pmm_crash_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = pmm_crash_handler;
    /* SA_NODEFER: the re-raise above reaches the previous handler at once. */
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < PMM_FATAL_COUNT; i++) {
        if (sigaction(pmm_fatal_signals[i], &action, &pmm_previous[i]) != 0) return -1;
    }
    return 0;
}
