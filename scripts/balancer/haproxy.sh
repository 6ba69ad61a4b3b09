#!/usr/bin/env bash
# HAProxy in front of cometbench nodes, on loopback, in the foreground.
#
#   scripts/balancer/haproxy.sh PORT BACKEND_PORT...
#
# Installs haproxy when missing (apt-get), writes a private configuration
# into a temporary directory (never /etc/haproxy), starts haproxy as a child
# of this script (master-worker mode, not a daemon), listening on
# 127.0.0.1:PORT only and spreading connections over the backends
# 127.0.0.1:BACKEND_PORT... (TCP mode, least connections first: a long-poll
# or a stream is one long TCP connection, and HTTP is left to the nodes), and
# prints one line once a connection through it is answered:
#
#   ready 127.0.0.1:PORT pid HAPROXY_PID
#
# and runs until SIGTERM or SIGINT, then stops haproxy and removes the
# directory. Logs go to stderr.
#
# Limits: one haproxy process holds both ends of every connection, so with
# this machine's open-file limit (20,000) it takes at most ~9,900 clients.
set -uo pipefail
PEER=haproxy
. "$(dirname "$0")/../peers/common.sh"

PORT=${1:-}
check_port PORT "$PORT"
shift
[ $# -ge 1 ] || { echo "$PEER: name at least one BACKEND_PORT" >&2; exit 2; }
for b in "$@"; do check_port BACKEND_PORT "$b"; done

ensure_packages haproxy || { echo "$PEER: could not install haproxy" >&2; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "$PEER: $HAPROXY missing" >&2; exit 1; }

make_workdir

servers=
i=0
for b in "$@"; do
    servers="$servers
    server node$i 127.0.0.1:$b"
    i=$((i + 1))
done

cat > "$WORKDIR/haproxy.cfg" <<CONF
global
    maxconn 9900
    log stderr format raw local0 notice
    pidfile $WORKDIR/haproxy.pid

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h

frontend nodes
    bind 127.0.0.1:$PORT
    maxconn 9900
    default_backend nodes

backend nodes
    balance leastconn
$servers
CONF

"$HAPROXY" -c -q -f "$WORKDIR/haproxy.cfg" >&2 \
    || { echo "$PEER: haproxy refused the configuration (see above)" >&2; exit 1; }
"$HAPROXY" -W -db -f "$WORKDIR/haproxy.cfg" >&2 &
MASTER=$!
CHILDREN+=($MASTER)

# Ready once a request through it reaches a node (any HTTP answer).
ready() { http_probe "$PORT" /stats; }
wait_ready 30 ready || exit 1
echo "ready 127.0.0.1:$PORT pid $MASTER"
serve_until_stopped
