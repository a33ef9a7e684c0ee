# shellcheck shell=bash disable=SC2034  # the settings are used by the steps that source this
# Sourced by every scripts/engines/* step: where the test engines live, and small helpers.
#
# Every path and port the tests need is defined here, once; scripts/setup writes them to
# $ENGINES_ENV for the tests (see the comment at the top of scripts/setup).

set -Eeuo pipefail

# The steps change /etc, /run and network namespaces: they run as root.
if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=DOCKER_HOST -- "$0" "$@"
fi

# ---- where everything lives -------------------------------------------------------------

TEST_ETC=/etc/moat-test                 # configuration and keys of the test engines
ENGINES_ENV=$TEST_ETC/engines.env       # what the tests read
TEST_BIN=$TEST_ETC/bin                  # tests put this first on PATH: the ssh wrapper
TEST_RUN=/run/moat-test                 # pid files and sockets of sshd and ssh
LOG_DIR=/var/log/moat-test              # logs of every daemon started here

# The private dockerd, in its own network namespace.
REMOTE_NETNS=moat-remote
REMOTE_NETNS_PATH=/run/netns/$REMOTE_NETNS
REMOTE_RUN=/run/moat-remote             # its socket, pid files and exec root
REMOTE_SOCK=$REMOTE_RUN/docker.sock
REMOTE_DATA=/var/lib/moat-remote        # its data root: images survive a reboot
REMOTE_TCP_PORT=2375                    # plain HTTP, relayed to $REMOTE_SOCK (inside the netns)
REMOTE_TLS_PORT=2376                    # dockerd itself, --tlsverify (inside the netns)
REMOTE_TCP_HOST=tcp://127.0.0.1:$REMOTE_TCP_PORT
REMOTE_TLS_HOST=tcp://127.0.0.1:$REMOTE_TLS_PORT
TLS_DIR=$TEST_ETC/tls                   # CA and server material
TLS_CLIENT_DIR=$TLS_DIR/client          # ca.pem cert.pem key.pem, as DOCKER_CERT_PATH expects
TLS_BAD_CLIENT_DIR=$TLS_DIR/other-ca    # the same layout from an unrelated CA: must be refused
DOCKER_CONFIG_DIR=$TEST_ETC/docker-config
CONTEXT_NAME=moat-tls

# Podman's rootful API socket, where moat looks for it when no Docker socket answers.
PODMAN_SOCK=/run/podman/podman.sock

# sshd on the host's loopback; the far side reaches the shared engine with dial-stdio.
SSH_PORT=2222
SSH_USER=root
SSH_HOST=ssh://$SSH_USER@127.0.0.1:$SSH_PORT
SSH_DIR=$TEST_ETC/ssh

# The shared engine the images come from (as scripts/setup reads DOCKER_HOST).
case "${DOCKER_HOST:-}" in
    "") SHARED_SOCK=/var/run/docker.sock ;;
    unix://*) SHARED_SOCK=${DOCKER_HOST#unix://} ;;
    *) SHARED_SOCK="" ;;
esac
# No docker command here may hang setup: a wedged engine is a failure with a reason.
DOCKER_TIMEOUT=${MOAT_SETUP_DOCKER_TIMEOUT:-120}
docker() { timeout -k 10 "$DOCKER_TIMEOUT" docker "$@"; }

# "(timed out after Ns)" if exit status $1 is timeout's (124, or 137 when it had to kill:
# `docker run` takes SIGTERM as a signal to forward to its container).
timed_out() {
    case $1 in 124 | 137) echo " (timed out after ${DOCKER_TIMEOUT}s)" ;; esac
}

# The images every engine must hold, copied from the shared engine (no registry here).
TEST_IMAGES=(moat-test/busybox:latest moat-test/agents:latest)

# ---- helpers ----------------------------------------------------------------------------

STEP=$(basename "$0")
say() { echo "setup: $STEP: $*"; }
die() { echo "setup: $STEP: $*" >&2; exit 1; }
# Any unexpected failure names the step, the line and the command.
trap 'echo "setup: $STEP: failed at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR

# Install the Debian packages in $@ that are missing; touch apt only if one is.
need_packages() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
}

# True if process $1 exists and is not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Print the pid in pid file $1 if that process is alive and running as command $2.
live_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}

# The command line of process $1, one argument per line.
cmdline_of() {
    tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null
}

# True if process $1 runs exactly the command line $2...
runs_args() {
    local pid=$1
    shift
    [ "$(cmdline_of "$pid")" = "$(printf '%s\n' "$@")" ]
}

# Start $2... in the background in a session of its own (so it outlives this script and
# the terminal), output appended to log $1; print its pid.
start_daemon() {
    local log=$1
    shift
    mkdir -p "$(dirname "$log")"
    # Keep one older log, and only a 10 MB one: daemons restart seldom, logs only grow.
    if [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -gt $((10 << 20)) ]; then mv -f "$log" "$log.1"; fi
    # 9>&-: the daemon must not hold the setup lock (below).
    setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
    echo $!
}

# SIGTERM process $1 and wait up to $2 seconds (default 30) for it to go, then SIGKILL.
stop_pid() {
    local pid=$1 deadline=$((SECONDS + ${2:-30}))
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "pid $pid did not stop on SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.1
    done
}

# wait_until SECONDS WHAT PID LOG CMD...: run CMD until it succeeds; fail (with the log's
# tail) if process PID exits first or SECONDS pass.
wait_until() {
    local secs=$1 what=$2 pid=$3 log=$4 deadline
    shift 4
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$pid"; then
            tail -n 20 "$log" >&2 || true
            die "$what exited before it answered (log: $log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$log" >&2 || true
            die "$what did not answer within ${secs}s (log: $log)"
        fi
        sleep 0.2
    done
}

# True if an HTTP GET of /_ping through curl options $@ answers OK.
pings() {
    [ "$(curl -sS --max-time 5 "$@" 2>/dev/null)" = OK ]
}

# The image ID of each of TEST_IMAGES on the shared engine, one a line ("-" if missing).
shared_image_ids() {
    local img
    for img in "${TEST_IMAGES[@]}"; do
        docker image inspect --format '{{.Id}}' "$img" 2>/dev/null || echo -
    done
}

# One engine step at a time on this machine: two setups at once (say, CI in two worktrees)
# would otherwise both start the same daemons. Every process the steps leave running is
# started without this descriptor.
SETUP_LOCK=/run/lock/moat-test-engines.lock
mkdir -p "$(dirname "$SETUP_LOCK")"
exec 9>"$SETUP_LOCK"
flock -w 600 9 || die "another setup held $SETUP_LOCK for 10 minutes"
