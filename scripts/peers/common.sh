# Shared by the peer scripts (sourced, not run): package installs, a private
# temporary directory, readiness probes and the stop trap.

# ensure_packages PKG...: installs the Debian packages that are missing, with
# `apt-get update` first when apt does not know one of them.
ensure_packages() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "$PEER: installing ${missing[*]}" >&2
    local apt=(apt-get)
    [ "$(id -u)" -ne 0 ] && apt=(sudo -n apt-get)
    # Services must not start on installation (a stock nginx would listen on
    # 0.0.0.0:80): Debian's invoke-rc.d honours policy-rc.d, present in
    # container images; RUNLEVEL=1 keeps the sysv scripts quiet elsewhere.
    local unknown=0
    for p in "${missing[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || unknown=1
    done
    if [ "$unknown" -eq 1 ]; then
        "${apt[@]}" update -qq >&2 || return 1
    fi
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# check_port NAME VALUE: a TCP port number below the ephemeral range.
check_port() {
    case "$2" in
        '' | *[!0-9]*) echo "$PEER: $1 must be a port number, got '$2'" >&2; exit 2 ;;
    esac
    if [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
        echo "$PEER: $1 must be 1-65535, got $2" >&2
        exit 2
    fi
}

# check_secs NAME VALUE: a whole number of seconds >= 1.
check_secs() {
    case "$2" in
        '' | *[!0-9]* | 0) echo "$PEER: $1 must be a whole number of seconds >= 1, got '$2'" >&2; exit 2 ;;
    esac
}

# http_probe PORT PATH: true when 127.0.0.1:PORT answers PATH with any HTTP status.
http_probe() {
    local line=''
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 2>/dev/null
    IFS= read -r -t 3 line <&3 2>/dev/null
    exec 3<&- 3>&-
    case "$line" in HTTP/1.*) return 0 ;; *) return 1 ;; esac
}

# wait_ready SECS CHECK...: runs CHECK (a command) until it succeeds, for at
# most SECS seconds; fails early when a child we started has exited.
wait_ready() {
    local secs=$1
    shift
    local end=$((SECONDS + secs))
    while [ $SECONDS -lt $end ]; do
        "$@" && return 0
        local pid
        for pid in "${CHILDREN[@]}"; do
            kill -0 "$pid" 2>/dev/null || { echo "$PEER: process $pid exited during start-up" >&2; return 1; }
        done
        sleep 0.1
    done
    echo "$PEER: not ready within ${secs} s" >&2
    return 1
}

# The processes this script started, stopped by `stop` on SIGTERM, SIGINT or exit.
CHILDREN=()
STOPPING=0

stop() {
    [ "$STOPPING" -eq 1 ] && return
    STOPPING=1
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    # Up to 5 s to stop, then SIGKILL.
    local i
    for i in $(seq 50); do
        local alive=0
        for pid in "${CHILDREN[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${CHILDREN[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    [ -n "${WORKDIR:-}" ] && [ -d "$WORKDIR" ] && rm -rf -- "$WORKDIR"
}

on_signal() {
    stop
    exit 0
}

trap on_signal TERM INT
trap stop EXIT

# make_workdir: a private directory under $TMPDIR (or /tmp), removed on stop.
make_workdir() {
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/cometbench-$PEER.XXXXXX")
    chmod 700 "$WORKDIR"
}

# serve_until_stopped: waits for a signal or for a child to exit (then exits 1).
serve_until_stopped() {
    while :; do
        local pid
        for pid in "${CHILDREN[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid" 2>/dev/null
                local rc=$?
                echo "$PEER: process $pid exited with $rc" >&2
                exit 1
            fi
        done
        # `wait -n` returns when any child exits or a trapped signal arrives.
        wait -n 2>/dev/null || sleep 1
    done
}
