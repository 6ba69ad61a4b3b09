#!/usr/bin/env bash
# Redis as cometbench's broker, on loopback, in the foreground.
#
#   scripts/broker/redis.sh PORT [DATA_DIR]
#
# Installs redis-server when missing (apt-get), writes a private configuration
# into a temporary directory (never /etc/redis), starts redis-server as a
# child of this script (`daemonize no`), bound to 127.0.0.1 only with
# protected mode on, and prints one line once it answers PING:
#
#   ready redis://127.0.0.1:PORT pid REDIS_PID
#
# and runs until SIGTERM or SIGINT, then stops redis-server and removes the
# temporary directory. Redis logs to stderr.
#
# Persistence: none by default (no RDB snapshots, no append-only file): a
# restarted broker starts empty, so every channel's sequence and backlog are
# gone. With DATA_DIR, Redis keeps an append-only file there and loads it on
# start; DATA_DIR is created if missing and kept on stop, so a broker
# restarted with the same DATA_DIR keeps its channels. The file is fsynced
# before each answer (`appendfsync always`): with `everysec`, Redis answers
# while a background fsync postpones its write by up to 2 s, so a SIGKILL
# lost ids it had acknowledged (CI, 2026-12-02: 2 and 3 of 3, the next id 2).
set -uo pipefail
PEER=redis
. "$(dirname "$0")/../peers/common.sh"

PORT=${1:-}
DATA_DIR=${2:-}
check_port PORT "$PORT"

ensure_packages redis-server || { echo "$PEER: could not install redis-server" >&2; exit 1; }
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
[ -x "$REDIS" ] || { echo "$PEER: $REDIS missing" >&2; exit 1; }

# Something already listening on PORT would answer the readiness probe in
# place of the Redis started here.
if { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
    exec 3<&- 3>&-
    echo "$PEER: 127.0.0.1:$PORT is already in use" >&2
    exit 1
fi

make_workdir

if [ -n "$DATA_DIR" ]; then
    mkdir -p -- "$DATA_DIR" || { echo "$PEER: cannot create DATA_DIR $DATA_DIR" >&2; exit 1; }
    DATA_DIR=$(cd -- "$DATA_DIR" && pwd)
    persistence="dir $DATA_DIR
appendonly yes
appenddirname appendonly
appendfsync always"
else
    persistence="dir $WORKDIR
appendonly no"
fi

# `save ""` turns RDB snapshots off in both modes: with DATA_DIR the
# append-only file is the one record. maxclients stays under the open-file
# limit (20,000 here) with room for Redis's own descriptors.
cat > "$WORKDIR/redis.conf" <<CONF
bind 127.0.0.1
protected-mode yes
port $PORT
tcp-backlog 511
unixsocket ""
daemonize no
supervised no
pidfile ""
logfile ""
loglevel notice
databases 1
save ""
$persistence
maxclients 10000
CONF

# Redis writes its log to stdout: send it to stderr, so that stdout carries
# the ready line only.
"$REDIS" "$WORKDIR/redis.conf" >&2 &
SERVER=$!
CHILDREN+=($SERVER)

# ping: true when 127.0.0.1:PORT answers PING with +PONG (not -LOADING while
# an append-only file is read back).
ping() {
    local line=''
    { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3 2>/dev/null
    IFS= read -r -t 3 line <&3 2>/dev/null
    exec 3<&- 3>&-
    case "$line" in +PONG*) return 0 ;; *) return 1 ;; esac
}

wait_ready 30 ping || exit 1
echo "ready redis://127.0.0.1:$PORT pid $SERVER"
serve_until_stopped
