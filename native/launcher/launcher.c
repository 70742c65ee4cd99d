/* pmm_launcher: the small process between the agent and each task, so tasks outlive the agent.
 *
 * As Mesos splits the agent from its launcher, every task runs under a launcher:
 * forked by the agent's `pmm_launcher --serve` (pmm_serve below), or started as
 * `pmm_launcher <run_dir>` by whoever then writes its pids/forked.pid:
 *
 * 1. a served launcher leaves for a session of its own and writes pids/forked.pid
 *    (its pid and start time); then the agent sends the launch spec on our
 *    stdin and closes it;
 * 2. we reserve pids/task.pid and termination (4096 padded bytes each), so a
 *    task that fills the disk cannot cost its records;
 * 3. we fork the task into a session of its own (it leads a process group
 *    holding everything it forks and nothing of ours); between fork and exec
 *    the child joins its cgroups, sets its rlimits, then its groups, group
 *    and user (each step needs the privileges the next one drops), its
 *    working directory, and default signal dispositions;
 * 4. we write pids/task.pid and answer one JSON line on stdout,
 *    {"launcher": {"pid": N, "start_time": N}, "pid": N, "start_time": N} or
 *    {"launcher": {...}, "error": "..."}, then let go of stdout;
 * 5. we reap the task, SIGKILL what is left of its process group, and write
 *    termination ({"wait_status": N}, the raw waitpid status).
 *
 * The spec is a sequence of fields `<tag><text>\0` (argv and environment
 * cannot hold NUL bytes, so no escaping is needed): P program, A argv item,
 * E environment item (KEY=VALUE), D working directory, O stdout file,
 * R stderr file, C cgroup folder, L rlimit "which soft hard", U user
 * "uid gid group...".  LaunchSpec.encode() (pymesos_modules/agent/launcher.py)
 * writes it.
 *
 * A C program rather than a Python script: starting a Python interpreter per
 * task cost about 50 ms of CPU, which capped a 2-core agent near 35 tasks/s.
 * Records are replaced atomically (temporary file, rename) without fsync, as
 * Mesos' checkpoint() (sync = false) and its launcher's exit status file:
 * they survive the agent, and after a machine crash no task survives anyway.
 * On a full disk a record goes into the space reserved in step 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PMM_RESERVED_SIZE 4096
#define PMM_RESERVED "{\"reserved\": true}"
#define PMM_MESSAGE_MAX 4096
#define PMM_SPEC_MAX (64u << 20)

typedef struct {
    const char *program;
    char **argv;
    size_t argc;
    char **env;
    size_t envc;
    const char *cwd;
    const char *stdout_path;
    const char *stderr_path;
    char **cgroups;
    size_t cgroupc;
    struct {
        int which;
        struct rlimit limit;
    } *rlimits;
    size_t rlimitc;
    int has_user;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t groupc;
} pmm_spec;

/* Appends `item` to a NULL-terminated growing array; 0 on success. */
static int pmm_push(char ***items, size_t *count, char *item) {
    char **grown = realloc(*items, (*count + 2) * sizeof(char *));
    if (grown == NULL) return -1;
    grown[(*count)++] = item;
    grown[*count] = NULL;
    *items = grown;
    return 0;
}

/* Reads all of fd 0; the buffer is NUL-terminated one byte past *size. */
static char *pmm_read_all(size_t *size) {
    size_t capacity = 65536, used = 0;
    char *data = malloc(capacity + 1);
    if (data == NULL) return NULL;
    for (;;) {
        if (used == capacity) {
            if (capacity >= PMM_SPEC_MAX) break;
            char *grown = realloc(data, capacity * 2 + 1);
            if (grown == NULL) break;
            data = grown;
            capacity *= 2;
        }
        ssize_t got = read(STDIN_FILENO, data + used, capacity - used);
        if (got == 0) {
            data[used] = '\0';
            *size = used;
            return data;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        used += (size_t)got;
    }
    free(data);
    return NULL;
}

static int pmm_parse_numbers(const char *text, long long *out, size_t want_min, size_t want_max,
                             size_t *found) {
    size_t n = 0;
    const char *at = text;
    while (*at != '\0') {
        if (n == want_max) return -1;
        char *end = NULL;
        errno = 0;
        long long value = strtoll(at, &end, 10);
        if (end == at || errno != 0 || (*end != ' ' && *end != '\0')) return -1;
        out[n++] = value;
        at = *end == ' ' ? end + 1 : end;
    }
    if (n < want_min) return -1;
    *found = n;
    return 0;
}

/* Splits the spec into fields (in place); a message in `why` when it is unusable. */
static int pmm_parse(char *data, size_t size, pmm_spec *spec, const char **why) {
    memset(spec, 0, sizeof *spec);
    size_t at = 0;
    while (at < size) {
        char *field = data + at;
        size_t length = strlen(field);
        if (at + length >= size) {
            *why = "a field is not NUL-terminated";
            return -1;
        }
        at += length + 1;
        if (length == 0) {
            *why = "an empty field";
            return -1;
        }
        char tag = field[0];
        char *text = field + 1;
        int failed = 0;
        switch (tag) {
        case 'P': spec->program = text; break;
        case 'A': failed = pmm_push(&spec->argv, &spec->argc, text); break;
        case 'E': failed = pmm_push(&spec->env, &spec->envc, text); break;
        case 'D': spec->cwd = text; break;
        case 'O': spec->stdout_path = text; break;
        case 'R': spec->stderr_path = text; break;
        case 'C': failed = pmm_push(&spec->cgroups, &spec->cgroupc, text); break;
        case 'L': {
            long long numbers[3];
            size_t found = 0;
            if (pmm_parse_numbers(text, numbers, 3, 3, &found) != 0) {
                *why = "an rlimit is not 'which soft hard'";
                return -1;
            }
            void *grown = realloc(spec->rlimits, (spec->rlimitc + 1) * sizeof *spec->rlimits);
            if (grown == NULL) {
                failed = 1;
                break;
            }
            spec->rlimits = grown;
            spec->rlimits[spec->rlimitc].which = (int)numbers[0];
            /* RLIM_INFINITY travels as -1, as Python's resource module spells it. */
            spec->rlimits[spec->rlimitc].limit.rlim_cur =
                numbers[1] < 0 ? RLIM_INFINITY : (rlim_t)numbers[1];
            spec->rlimits[spec->rlimitc].limit.rlim_max =
                numbers[2] < 0 ? RLIM_INFINITY : (rlim_t)numbers[2];
            spec->rlimitc++;
            break;
        }
        case 'U': {
            size_t most = 2;
            for (const char *c = text; *c != '\0'; c++) most += *c == ' ';
            long long *numbers = calloc(most, sizeof *numbers);
            size_t found = 0;
            free(spec->groups);
            spec->groups = calloc(most, sizeof(gid_t));
            if (numbers == NULL || spec->groups == NULL ||
                pmm_parse_numbers(text, numbers, 2, most, &found) != 0) {
                free(numbers);
                *why = "the user is not 'uid gid group...'";
                return -1;
            }
            spec->has_user = 1;
            spec->uid = (uid_t)numbers[0];
            spec->gid = (gid_t)numbers[1];
            spec->groupc = found - 2;
            for (size_t i = 0; i < spec->groupc; i++) spec->groups[i] = (gid_t)numbers[i + 2];
            free(numbers);
            break;
        }
        default: *why = "an unknown field"; return -1;
        }
        if (failed) {
            *why = "out of memory";
            return -1;
        }
    }
    if (spec->program == NULL || spec->argc == 0 || spec->cwd == NULL ||
        spec->stdout_path == NULL || spec->stderr_path == NULL) {
        *why = "a program, argv, working directory and output files are required";
        return -1;
    }
    static char *no_env[] = {NULL};
    if (spec->env == NULL) spec->env = no_env;
    return 0;
}

static void pmm_free_spec(pmm_spec *spec) {
    free(spec->argv);
    if (spec->envc > 0) free(spec->env);
    free(spec->cgroups);
    free(spec->rlimits);
    free(spec->groups);
}

/* A bounded text buffer: appends past its capacity are cut, never overflow. */
typedef struct {
    char *data;
    size_t cap; /* including the terminating NUL */
    size_t used;
} pmm_text;

static void pmm_put(pmm_text *out, const char *text, size_t length) {
    if (out->used + 1 >= out->cap) return;
    size_t room = out->cap - 1 - out->used;
    if (length > room) length = room;
    memcpy(out->data + out->used, text, length);
    out->used += length;
    out->data[out->used] = '\0';
}

static void pmm_puts(pmm_text *out, const char *text) { pmm_put(out, text, strlen(text)); }

/* `text` as a JSON string, quotes included. */
static void pmm_put_json(pmm_text *out, const char *text) {
    static const char hex[] = "0123456789abcdef";
    pmm_puts(out, "\"");
    /* Stops short of the end, so the closing quote and what follows still fit. */
    for (const unsigned char *c = (const unsigned char *)text;
         *c != '\0' && out->used + 12 < out->cap; c++) {
        char escaped[7] = {'\\', (char)*c, 0, 0, 0, 0, 0};
        if (*c == '"' || *c == '\\') {
            pmm_put(out, escaped, 2);
        } else if (*c < 0x20) {
            memcpy(escaped, "\\u00", 4);
            escaped[4] = hex[*c >> 4];
            escaped[5] = hex[*c & 15];
            pmm_put(out, escaped, 6);
        } else {
            pmm_put(out, (const char *)c, 1); /* UTF-8 passes through */
        }
    }
    pmm_puts(out, "\"");
}

/* shlex.quote() of `text` (the agent's messages quote argv this way). */
static void pmm_put_quoted(pmm_text *out, const char *text) {
    int safe = *text != '\0';
    for (const char *c = text; *c != '\0' && safe; c++)
        safe = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
               strchr("_@%+=:,./-", *c) != NULL;
    if (safe) {
        pmm_puts(out, text);
        return;
    }
    pmm_puts(out, "'");
    for (const char *c = text; *c != '\0'; c++) {
        if (*c == '\'')
            pmm_puts(out, "'\"'\"'");
        else
            pmm_put(out, c, 1);
    }
    pmm_puts(out, "'");
}

/* The document padded with spaces to PMM_RESERVED_SIZE (JSON allows them). */
static int pmm_padded(char *block, const char *document) {
    size_t length = strlen(document);
    if (length > PMM_RESERVED_SIZE) return -1;
    memset(block, ' ', PMM_RESERVED_SIZE);
    memcpy(block, document, length);
    return 0;
}

static int pmm_write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t written = write(fd, data, size);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return -1;
        data += written;
        size -= (size_t)written;
    }
    return 0;
}

/* A placeholder record in blocks of its own (see step 2). */
static int pmm_reserve(const char *path) {
    char block[PMM_RESERVED_SIZE];
    pmm_padded(block, PMM_RESERVED);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int failed = pmm_write_all(fd, block, sizeof block);
    int saved = errno;
    if (close(fd) != 0 && !failed) return -1;
    errno = saved;
    return failed;
}

/* Replaces `path` with `document` atomically; on failure (e.g. a full disk) writes it into
 * the blocks reserved for it.  A run folder the agent removed meanwhile is no error. */
static void pmm_record(const char *run_dir, const char *name, const char *document) {
    char path[PATH_MAX], temporary[PATH_MAX];
    const char *base = strrchr(name, '/');
    size_t folder = base == NULL ? 0 : (size_t)(base - name) + 1;
    if (snprintf(path, sizeof path, "%s/%s", run_dir, name) >= (int)sizeof path ||
        snprintf(temporary, sizeof temporary, "%s/%.*s.%s.%ld.tmp", run_dir, (int)folder, name,
                 name + folder, (long)getpid()) >= (int)sizeof temporary) {
        fprintf(stderr, "pmm-launcher: the path of %s in %s is too long\n", name, run_dir);
        return;
    }
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) return; /* the agent forgot the run */
    int first = 0;
    if (fd >= 0) {
        int failed = pmm_write_all(fd, document, strlen(document));
        first = errno;
        if (close(fd) != 0 && !failed) {
            failed = 1;
            first = errno;
        }
        if (!failed && rename(temporary, path) == 0) return;
        if (!failed) first = errno;
        unlink(temporary);
    } else {
        first = errno;
    }
    char block[PMM_RESERVED_SIZE];
    int in_place = open(path, O_WRONLY | O_CLOEXEC);
    if (in_place >= 0 && pmm_padded(block, document) == 0 &&
        pwrite(in_place, block, sizeof block, 0) == (ssize_t)sizeof block) {
        close(in_place);
        return;
    }
    int second = errno;
    if (in_place >= 0) close(in_place);
    fprintf(stderr, "pmm-launcher: cannot write %s: %s; nor into its reserved space: %s\n", path,
            strerror(first), strerror(second));
}

/* Field 22 of /proc/<pid>/stat (start time in clock ticks after boot), -1 if unreadable. */
static long long pmm_start_time(pid_t pid) {
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t got = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (got <= 0) return -1;
    stat[got] = '\0';
    /* The command name may hold spaces and parentheses: count after its last ')'. */
    char *at = strrchr(stat, ')');
    if (at == NULL) return -1;
    at += 2;
    for (int field = 3; field < 22 && at != NULL; field++) {
        at = strchr(at, ' ');
        if (at != NULL) at++;
    }
    return at == NULL ? -1 : strtoll(at, NULL, 10);
}

/* One line to the agent, then stdout goes to /dev/null: the agent may be gone later. */
static void pmm_reply(const char *line) {
    (void)pmm_write_all(STDOUT_FILENO, line, strlen(line));
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
}

/* Room for a whole message even when every byte is escaped as \u00XX. */
#define PMM_DOCUMENT_MAX (PMM_MESSAGE_MAX * 6 + 64)

/* `"launcher": {"pid": N, "start_time": N}, `: who answers, in every reply (pmm_identify). */
static char pmm_self[128];

/* {<prefix>"<key>": "<message>"} followed by `end`, into buffer[PMM_DOCUMENT_MAX]. */
static void pmm_document(char *buffer, const char *prefix, const char *key, const char *message,
                         const char *end) {
    pmm_text document = {buffer, PMM_DOCUMENT_MAX, 0};
    buffer[0] = '\0';
    pmm_puts(&document, "{");
    pmm_puts(&document, prefix);
    pmm_put_json(&document, key);
    pmm_puts(&document, ": ");
    pmm_put_json(&document, message);
    pmm_puts(&document, "}");
    pmm_puts(&document, end); /* pmm_put_json left room for both */
}

/* Answers the agent {"launcher": ..., "error": message}. */
static void pmm_reply_error(const char *message) {
    char line[PMM_DOCUMENT_MAX];
    pmm_document(line, pmm_self, "error", message, "\n");
    pmm_reply(line);
}

/* The task could not be started: recorded as its termination, and the agent's answer. */
static void pmm_fail(const char *run_dir, const char *message) {
    char document[PMM_DOCUMENT_MAX];
    pmm_document(document, "", "launch_error", message, "");
    pmm_record(run_dir, "termination", document);
    pmm_reply_error(message);
}

/* What the child tells the parent when it cannot exec: the step and its errno. */
typedef struct {
    int step;
    int error;
} pmm_child_failure;

enum { PMM_STEP_CGROUP = 1, PMM_STEP_RLIMIT, PMM_STEP_USER, PMM_STEP_CWD, PMM_STEP_EXEC };

/* Between fork and exec: only async-signal-safe calls from here to execve. */
static void pmm_child(const pmm_spec *spec, const int *cgroup_fds, int out, int err, int report) {
    pmm_child_failure failure = {0, 0};
    sigset_t all;
    sigemptyset(&all);
    struct sigaction standard;
    memset(&standard, 0, sizeof standard);
    standard.sa_handler = SIG_DFL;
    /* The agent ignores SIGPIPE (Python does): the task gets every default back. */
    for (int signum = 1; signum < NSIG; signum++) sigaction(signum, &standard, NULL);
    sigprocmask(SIG_SETMASK, &all, NULL);
    setsid();
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    for (size_t i = 0; i < spec->cgroupc; i++) {
        if (write(cgroup_fds[i], "0", 1) != 1) {
            failure = (pmm_child_failure){PMM_STEP_CGROUP, errno};
            goto failed;
        }
    }
    for (size_t i = 0; i < spec->rlimitc; i++) {
        if (setrlimit(spec->rlimits[i].which, &spec->rlimits[i].limit) != 0) {
            failure = (pmm_child_failure){PMM_STEP_RLIMIT, errno};
            goto failed;
        }
    }
    if (chdir(spec->cwd) != 0) {
        failure = (pmm_child_failure){PMM_STEP_CWD, errno};
        goto failed;
    }
    if (spec->has_user && (setgroups(spec->groupc, spec->groups) != 0 ||
                           setgid(spec->gid) != 0 || setuid(spec->uid) != 0)) {
        failure = (pmm_child_failure){PMM_STEP_USER, errno};
        goto failed;
    }
    execve(spec->program, spec->argv, spec->env);
    failure = (pmm_child_failure){PMM_STEP_EXEC, errno};
failed:
    (void)!write(report, &failure, sizeof failure);
    _exit(127);
}

static int pmm_run(const char *run_dir, const pmm_spec *spec) {
    char path[PATH_MAX], message[PMM_MESSAGE_MAX];
    /* Before the task runs: a task that fills the disk must not cost its records. */
    static const char *const reserved[] = {"pids/task.pid", "termination"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", run_dir, reserved[i]);
        if (pmm_reserve(path) != 0 && errno != ENOENT) {
            snprintf(message, sizeof message,
                     "cannot reserve space for the task's records in %s (%s); the task was not "
                     "started",
                     run_dir, strerror(errno));
            pmm_reply_error(message);
            return 1;
        }
    }
    int *cgroup_fds = calloc(spec->cgroupc + 1, sizeof(int));
    size_t opened = 0;
    int out = -1, err = -1, status = 1;
    int report[2] = {-1, -1};
    if (cgroup_fds == NULL) {
        pmm_fail(run_dir, "the task launcher ran out of memory");
        return 1;
    }
    for (; opened < spec->cgroupc; opened++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", spec->cgroups[opened]);
        cgroup_fds[opened] = open(path, O_WRONLY | O_CLOEXEC);
        if (cgroup_fds[opened] < 0) {
            snprintf(message, sizeof message, "cannot join the cgroup %s: %s",
                     spec->cgroups[opened], strerror(errno));
            pmm_fail(run_dir, message);
            goto done;
        }
    }
    out = open(spec->stdout_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    err = out < 0 ? -1 : open(spec->stderr_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (out < 0 || err < 0 || pipe2(report, O_CLOEXEC) != 0) {
        snprintf(message, sizeof message, "cannot open the task's output files in %s: %s",
                 spec->cwd, strerror(errno));
        pmm_fail(run_dir, message);
        goto done;
    }
    pid_t task = fork();
    if (task < 0) {
        snprintf(message, sizeof message, "cannot fork the task: %s", strerror(errno));
        pmm_fail(run_dir, message);
        goto done;
    }
    if (task == 0) pmm_child(spec, cgroup_fds, out, err, report[1]);
    close(report[1]);
    report[1] = -1;
    pmm_child_failure failure = {0, 0};
    ssize_t got;
    do {
        got = read(report[0], &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    if (got == (ssize_t)sizeof failure) {
        int wait_status;
        while (waitpid(task, &wait_status, 0) < 0 && errno == EINTR) {
        }
        size_t used = 0;
        switch (failure.step) {
        case PMM_STEP_CGROUP:
            used = (size_t)snprintf(message, sizeof message, "cannot join its cgroups: ");
            break;
        case PMM_STEP_RLIMIT:
            used = (size_t)snprintf(message, sizeof message, "cannot set its rlimits: ");
            break;
        case PMM_STEP_USER:
            used = (size_t)snprintf(message, sizeof message, "cannot switch to uid %ld: ",
                                    (long)spec->uid);
            break;
        case PMM_STEP_CWD:
            used = (size_t)snprintf(message, sizeof message, "cannot enter %s: ", spec->cwd);
            break;
        default: break;
        }
        /* As the agent words it: failed to run <shlex.join(argv), at most 2000 chars>: why */
        char joined[2001], text[PMM_MESSAGE_MAX];
        pmm_text command = {joined, sizeof joined, 0};
        joined[0] = '\0';
        for (size_t i = 0; i < spec->argc; i++) {
            if (i > 0) pmm_puts(&command, " ");
            pmm_put_quoted(&command, spec->argv[i]);
        }
        snprintf(text, sizeof text, "failed to run %s: %.*s%s", joined, (int)used, message,
                 strerror(failure.error));
        pmm_fail(run_dir, text);
        goto done;
    }
    long long started = pmm_start_time(task);
    char document[128];
    if (started >= 0)
        snprintf(document, sizeof document, "{\"pid\": %ld, \"start_time\": %lld}", (long)task,
                 started);
    else
        snprintf(document, sizeof document, "{\"pid\": %ld, \"start_time\": null}", (long)task);
    pmm_record(run_dir, "pids/task.pid", document);
    char line[320];
    snprintf(line, sizeof line, "{%s%s\n", pmm_self, document + 1);
    pmm_reply(line);
    for (size_t i = 0; i < opened; i++) close(cgroup_fds[i]);
    opened = 0;
    close(out);
    close(err);
    out = err = -1;
    int wait_status = 0;
    while (waitpid(task, &wait_status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "pmm-launcher: cannot wait for the task: %s\n", strerror(errno));
            goto done;
        }
    }
    /* Whatever the task forked is part of it: nothing may outlive it. */
    kill(-task, SIGKILL);
    snprintf(document, sizeof document, "{\"wait_status\": %d}", wait_status);
    pmm_record(run_dir, "termination", document);
    status = 0;
done:
    for (size_t i = 0; i < opened; i++) close(cgroup_fds[i]);
    free(cgroup_fds);
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    if (report[0] >= 0) close(report[0]);
    if (report[1] >= 0) close(report[1]);
    return status;
}

/* This process as the checkpoint names it; with `record`, also written to pids/forked.pid. */
static void pmm_identify(const char *run_dir, int record) {
    char document[96];
    long long started = pmm_start_time(getpid());
    snprintf(document, sizeof document, "{\"pid\": %ld, \"start_time\": %lld}", (long)getpid(),
             started);
    if (started < 0)
        snprintf(document, sizeof document, "{\"pid\": %ld, \"start_time\": null}",
                 (long)getpid());
    snprintf(pmm_self, sizeof pmm_self, "\"launcher\": %s, ", document);
    if (record) pmm_record(run_dir, "pids/forked.pid", document);
}

/* One task's launcher: the spec on fd 0, the answer on fd 1, its messages on fd 2. */
static int pmm_launch(const char *run_dir) {
    if (chdir("/") != 0) return 2; /* hold no folder of the agent's */
    size_t size = 0;
    char *data = pmm_read_all(&size);
    pmm_spec spec;
    const char *why = "cannot read it";
    if (data == NULL || pmm_parse(data, size, &spec, &why) != 0) {
        /* The agent died while sending the spec: nothing was started. */
        fprintf(stderr, "pmm-launcher: no usable launch spec on stdin: %s\n", why);
        if (data != NULL) pmm_free_spec(&spec);
        free(data);
        return 2;
    }
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO); /* dup2 clears O_CLOEXEC on fd 0 */
        close(null);
    }
    int status = pmm_run(run_dir, &spec);
    pmm_free_spec(&spec);
    free(data);
    return status;
}

/* `pmm_launcher --serve`: one per agent, so starting a task costs a fork of this small
 * process, not a spawn (the agent's posix_spawn blocks its event loop until the exec is
 * done).  Each request on the SOCK_SEQPACKET socket on fd 0 is a run folder and three
 * descriptors (SCM_RIGHTS): the spec pipe, the reply pipe and the stderr file.  A forked
 * child becomes that task's launcher in a session of its own, writes pids/forked.pid, and
 * goes on as `pmm_launcher RUN_DIR` does.  Children are reaped by the kernel (SIGCHLD
 * ignored): they and their tasks outlive this server and the agent, as before.  The
 * server ends when the agent closes its end. */
static int pmm_serve(void) {
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    ignore.sa_flags = SA_NOCLDWAIT;
    sigaction(SIGCHLD, &ignore, NULL);
    int server = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (server < 0 || chdir("/") != 0) return 2;
    for (;;) {
        char run_dir[PATH_MAX];
        union {
            struct cmsghdr header;
            char space[CMSG_SPACE(sizeof(int) * 3)];
        } control;
        struct iovec part = {run_dir, sizeof run_dir - 1};
        struct msghdr message = {0};
        message.msg_iov = &part;
        message.msg_iovlen = 1;
        message.msg_control = control.space;
        message.msg_controllen = sizeof control.space;
        ssize_t got = recvmsg(server, &message, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return got == 0 ? 0 : 1; /* the agent is gone */
        run_dir[got] = '\0';
        int fds[3] = {-1, -1, -1};
        size_t count = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL;
             c = CMSG_NXTHDR(&message, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *passed = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < n; i++) {
                if (count < 3)
                    memcpy(&fds[count++], &passed[i], sizeof(int));
                else
                    close(passed[i]);
            }
        }
        if (count != 3 || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
            memchr(run_dir, '\0', (size_t)got) != NULL || run_dir[0] != '/') {
            fprintf(stderr, "pmm-launcher: ignoring a request without a run folder and "
                            "three descriptors\n");
            for (size_t i = 0; i < count; i++) close(fds[i]);
            continue;
        }
        pid_t child = fork();
        if (child == 0) {
            struct sigaction standard;
            memset(&standard, 0, sizeof standard);
            standard.sa_handler = SIG_DFL;
            sigaction(SIGCHLD, &standard, NULL); /* the launcher waits for its task */
            close(server);
            for (int target = 0; target < 3; target++) {
                if (dup2(fds[target], target) < 0) _exit(2);
            }
            for (int i = 0; i < 3; i++) {
                if (fds[i] > 2) close(fds[i]);
            }
            setsid();
            pmm_identify(run_dir, 1); /* on record before any task can start */
            exit(pmm_launch(run_dir));
        }
        if (child < 0) fprintf(stderr, "pmm-launcher: cannot fork: %s\n", strerror(errno));
        /* A failed fork closes the reply pipe unanswered: the agent says so. */
        for (int i = 0; i < 3; i++) close(fds[i]);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: pmm_launcher RUN_DIR  (the launch spec on stdin)\n"
                        "       pmm_launcher --serve  (requests on the socket on stdin)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a reply to an agent that is gone must not kill us */
    if (strcmp(argv[1], "--serve") == 0) return pmm_serve();
    pmm_identify(argv[1], 0); /* whoever started us wrote forked.pid */
    return pmm_launch(argv[1]);
}
