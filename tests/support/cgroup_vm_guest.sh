#!/bin/sh
# PID 1 of the cgroup VM once the host's root is mounted, read-only
# (.ci/cgroup-vm's init runs it; tests/support/cgroup_vm.py boots the VM).
# The host shares a writable folder (9p tag "out") holding `plan`, a shell
# file that calls `run_phase LAYOUT pytest-args...` once per phase; each
# phase sets up its cgroup layout, runs pytest there with the host's Python
# and checkout, and leaves LAYOUT.xml (JUnit), LAYOUT.log and LAYOUT.rc in
# the folder for the host's test to judge.  Then the VM powers off.
#
# Layouts:
#   v1-cpu-cpuacct  cgroup v1 with cpu and cpuacct on one mount,
#                   /sys/fs/cgroup/cpu,cpuacct (+ cpu and cpuacct symlinks), as
#                   most distributions mount them; no memory hierarchy
#   v2              cgroup2 at /sys/fs/cgroup holding every controller, as on a
#                   systemd host with the unified hierarchy
# v1 first: a controller can move from v1 to v2 once its v1 hierarchy is gone,
# but not back while v2 uses it.

say() { echo "cgroup-vm guest: $*"; }
off() { sync; echo o > /proc/sysrq-trigger; sleep 60; }

mkdir -p /dev/shm && mount -t tmpfs -o size=1500m scratch /dev/shm || { say "no scratch tmpfs"; off; }
mkdir -p /dev/shm/out /dev/shm/tmp /dev/shm/home
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /dev/shm/out || { say "no out share"; off; }
OUT=/dev/shm/out
# The host's root is read-only here: every write goes to the scratch tmpfs.
export TMPDIR=/dev/shm/tmp HOME=/dev/shm/home PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

setup_layout() {
    case "$1" in
    v1-cpu-cpuacct)
        mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup &&
            mkdir /sys/fs/cgroup/cpu,cpuacct &&
            mount -t cgroup -o cpu,cpuacct cgroup /sys/fs/cgroup/cpu,cpuacct &&
            ln -s cpu,cpuacct /sys/fs/cgroup/cpu &&
            ln -s cpu,cpuacct /sys/fs/cgroup/cpuacct
        ;;
    v2)
        mount -t cgroup2 cgroup2 /sys/fs/cgroup || return 1
        # cpu comes back from a v1 hierarchy a moment after its unmount
        for _ in $(seq 100); do
            grep -qw cpu /sys/fs/cgroup/cgroup.controllers &&
                grep -qw memory /sys/fs/cgroup/cgroup.controllers && return 0
            sleep 0.1
        done
        say "cgroup2 lacks cpu or memory: $(cat /sys/fs/cgroup/cgroup.controllers)"
        return 1
        ;;
    *) say "unknown layout $1"; return 1 ;;
    esac
}

teardown_layout() {
    case "$1" in
    v1-cpu-cpuacct) umount /sys/fs/cgroup/cpu,cpuacct && umount /sys/fs/cgroup ;;
    v2) umount /sys/fs/cgroup ;;
    esac
}

run_phase() {
    layout=$1
    shift
    if ! setup_layout "$layout" > "$OUT/$layout.log" 2>&1; then
        echo 125 > "$OUT/$layout.rc"
        return
    fi
    say "phase $layout: pytest $*"
    # Hypothesis' plugin alone costs the emulated guest half a minute to import.
    (cd "$REPO" && "$PY" -m pytest -p no:cacheprovider -p no:hypothesispytest -q -rA \
        --junitxml="$OUT/$layout.xml" "$@") >> "$OUT/$layout.log" 2>&1
    echo $? > "$OUT/$layout.rc"
    tail -n 3 "$OUT/$layout.log"
    teardown_layout "$layout" >> "$OUT/$layout.log" 2>&1
}

# PY, REPO, the environment the host wants, and the run_phase calls.
. "$OUT/plan"
say "done"
off
