#!/usr/bin/env bash
# Pushpin as a cometbench peer, on loopback, in the foreground.
#
#   scripts/peers/pushpin.sh PORT PUBLISH_PORT
#   env: HEARTBEAT (seconds between keep-alives on streams, default 15),
#        POLL_TIMEOUT (seconds a long-poll is held, default 30)
#
# Installs pushpin (with condure and zurl) and python3 when missing (apt-get),
# writes a private configuration into a temporary directory (never
# /etc/pushpin), starts a GRIP backend (grip_backend.py, python3 standard
# library, on a free 127.0.0.1 port) and Pushpin with the services
# condure, zurl, pushpin-proxy and pushpin-handler (zurl is what the proxy
# reaches the backend through: without it requests hang). Every ZeroMQ socket
# is an ipc path in the private directory, so only three TCP ports are bound,
# all on 127.0.0.1: PORT (clients), PUBLISH_PORT (publishing), the backend's.
# Prints one line once a request travels client -> Pushpin -> backend and the
# publish port answers:
#
#   ready 127.0.0.1:PORT publish 127.0.0.1:PUBLISH_PORT pid RUNNER_PID
#
# (the pushpin runner: it and the services it starts are the peer's
# processes; the backend stands for the application and is left out) and runs until SIGTERM or SIGINT, then stops everything it started and
# removes the directory.
#
# URL templates ({channel}: 1-64 of [A-Za-z0-9_.-];
# {transport}: longpoll, sse, stream or iframe):
#   subscribe   GET  http://127.0.0.1:PORT/sub/{channel}?transport={transport}
#       (transport=ws with Upgrade: websocket: Pushpin speaks WebSocket-over-HTTP
#       to the backend, the route's over_http, and the backend subscribes the
#       socket to {channel} and asks for a ping when it is idle HEARTBEAT s.)
#       The backend answers Grip-Channel: {channel} and Grip-Hold: stream
#       (sse, stream, iframe: content type, prelude, a keep-alive every
#       HEARTBEAT seconds, as in docs/DESIGN.md, Wire protocol) or response
#       (longpoll: held up to POLL_TIMEOUT, then `[]`).
#   publish     POST http://127.0.0.1:PUBLISH_PORT/publish/
#       Content-Type: application/json, GRIP items:
#       {"items":[{"channel":"{channel}","formats":{
#           "http-stream":{"content":"id: 1\ndata: hello\n\n"}}}]}
#       (or "http-response":{"body":"[{\"id\":1,\"data\":\"hello\"}]"} for
#       long-polls, "ws-message":{"content":"{\"id\":1,\"data\":\"hello\"}"} for
#       WebSockets). Pushpin passes the content through as it is: the publisher
#       frames each message for the transport and numbers it itself. Answers
#       200 "Published" without a subscriber count.
# Not offered: ids of its own, a backlog (no since / Last-Event-ID replay),
# missed-message notices. Tuned from the stock configuration: message_rate
# (deliveries per second, stock 2500) raised to 1000000; log_level 1.
set -uo pipefail
PEER=pushpin
. "$(dirname "$0")/common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

PORT=${1:-}
PUBLISH_PORT=${2:-}
HEARTBEAT=${HEARTBEAT:-15}
POLL_TIMEOUT=${POLL_TIMEOUT:-30}
check_port PORT "$PORT"
check_port PUBLISH_PORT "$PUBLISH_PORT"
check_secs HEARTBEAT "$HEARTBEAT"
check_secs POLL_TIMEOUT "$POLL_TIMEOUT"
if [ "$PORT" = "$PUBLISH_PORT" ]; then
    echo "$PEER: PUBLISH_PORT must differ from PORT (Pushpin publishes on its handler's own port)" >&2
    exit 2
fi

PACKAGES=(pushpin)
[ -x /usr/bin/python3 ] || PACKAGES+=(python3)
ensure_packages "${PACKAGES[@]}" || { echo "$PEER: could not install ${PACKAGES[*]}" >&2; exit 1; }
# Debian's python3, not whatever a version manager put first on PATH.
PYTHON=/usr/bin/python3
for bin in pushpin condure zurl pushpin-proxy pushpin-handler; do
    command -v "$bin" >/dev/null || { echo "$PEER: $bin not found after installing pushpin" >&2; exit 1; }
done
LIBDIR=/usr/lib/pushpin
[ -f "$LIBDIR/internal.conf" ] || { echo "$PEER: $LIBDIR/internal.conf missing" >&2; exit 1; }

make_workdir
mkdir -p "$WORKDIR/run" "$WORKDIR/log"

# The backend first: the routes file needs its port.
"$PYTHON" "$HERE/grip_backend.py" "$WORKDIR/backend.port" "$HEARTBEAT" "$POLL_TIMEOUT" >&2 &
CHILDREN+=($!)
wait_ready 10 test -s "$WORKDIR/backend.port" || exit 1
BACKEND_PORT=$(cat "$WORKDIR/backend.port")

SIG_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$WORKDIR/routes" <<CONF
* 127.0.0.1:$BACKEND_PORT,over_http
CONF
cat > "$WORKDIR/pushpin.conf" <<CONF
[global]
include=$LIBDIR/internal.conf
rundir=$WORKDIR/run
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:$PORT
logdir=$WORKDIR/log
log_level=1
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile=routes
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
x_forwarded_for=
x_forwarded_for_trusted=
orig_headers_need_mark=
accept_pushpin_route=false
log_from=false
log_user_agent=false
sig_iss=pushpin
sig_key=$SIG_KEY
upstream_key=
updates_check=off
organization_name=
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out

[handler]
push_in_spec=ipc://{rundir}/{ipc_prefix}push-in
push_in_sub_specs=ipc://{rundir}/{ipc_prefix}push-in-sub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=$PUBLISH_PORT
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=ipc://{rundir}/{ipc_prefix}command
# Deliveries per second (the stock 2500 rate-limits fan-out: 10,000 subscribers
# at 1 message/s would get a quarter of the messages, the rest dropped past
# message_hwm). Raised so that the fan-out itself is measured.
message_rate=1000000
message_hwm=25000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
CONF

# Pushpin's processes log to stderr (-m merges them), which the coordinator keeps.
pushpin --config "$WORKDIR/pushpin.conf" -m >&2 &
RUNNER=$!
CHILDREN+=($RUNNER)

ready() { http_probe "$PORT" /ready && http_probe "$PUBLISH_PORT" /; }
wait_ready 60 ready || exit 1
echo "ready 127.0.0.1:$PORT publish 127.0.0.1:$PUBLISH_PORT pid $RUNNER"
serve_until_stopped
