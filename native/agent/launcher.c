/* pmm-launcher: runs one task so that the task outlives the agent.
 *
 *   pmm-launcher STATUS_FILE PROGRAM ARG0 [ARG...]
 *
 * The agent starts this in the task's new session (its rlimits and
 * environment already applied); it forks and execs PROGRAM with ARG0...
 * in the same process group, waits for it, and writes the raw wait status
 * as decimal text to STATUS_FILE (through a temporary file and rename, so
 * a reader never sees half of it).  A restarted agent that is no longer
 * the parent learns how the task ended from that file (Mesos' launcher
 * and executor split: the agent can die, the task and its exit status
 * cannot).  Finally the launcher ends the same way the task did (same exit
 * code, or the same signal), so an agent that is still the parent sees
 * what it would have seen without it.
 *
 * SIGTERM, SIGINT and SIGHUP sent to the process group (a kill) reach the
 * task; the launcher only notes them, so it stays to record the status.
 * They are caught rather than ignored, and only after the fork: an ignored
 * signal would stay ignored in the task across exec. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void noted(int signum) { (void)signum; }

static int write_status(const char *path, int status) {
  size_t length = strlen(path);
  char *temporary = malloc(length + 5);
  if (temporary == NULL) return -1;
  memcpy(temporary, path, length);
  memcpy(temporary + length, ".tmp", 5);
  FILE *out = fopen(temporary, "w");
  int ok = out != NULL && fprintf(out, "%d\n", status) > 0;
  if (out != NULL && fclose(out) != 0) ok = 0;
  if (ok && rename(temporary, path) != 0) ok = 0;
  if (!ok) unlink(temporary);
  free(temporary);
  return ok ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s STATUS_FILE PROGRAM ARG0 [ARG...]\n", argv[0]);
    return 127;
  }
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "pmm-launcher: fork: %s\n", strerror(errno));
    return 127;
  }
  if (child == 0) {
    execv(argv[2], argv + 3);
    fprintf(stderr, "pmm-launcher: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = noted;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGHUP, &action, NULL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "pmm-launcher: waitpid: %s\n", strerror(errno));
      return 127;
    }
  }
  if (write_status(argv[1], status) != 0)
    fprintf(stderr, "pmm-launcher: cannot write %s: %s\n", argv[1], strerror(errno));
  if (WIFSIGNALED(status)) {
    int signum = WTERMSIG(status);
    struct sigaction dflt;
    memset(&dflt, 0, sizeof dflt);
    dflt.sa_handler = SIG_DFL;
    sigaction(signum, &dflt, NULL);
    raise(signum);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 127;
}
