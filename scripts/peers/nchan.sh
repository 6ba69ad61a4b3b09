#!/usr/bin/env bash
# nginx + nchan as a cometbench peer, on loopback, in the foreground.
#
#   scripts/peers/nchan.sh PORT [PUBLISH_PORT]
#   env: HEARTBEAT (seconds between SSE pings, default 15),
#        POLL_TIMEOUT (seconds a long-poll is held, default 30),
#        REDIS_URL (redis://127.0.0.1:PORT: keep every channel in that Redis
#        instead of this nginx's memory, so that several nchan nodes share
#        their channels: an upstream of nchan_redis_server, nchan_redis_pass)
#
# Installs nginx and libnginx-mod-nchan when missing (apt-get), writes its
# configuration into a private temporary directory (never /etc/nginx), starts
# nginx with one worker process (`daemon off`: the master stays a child of this
# script), prints one line when both ports accept requests:
#
#   ready 127.0.0.1:PORT publish 127.0.0.1:PUBLISH_PORT pid MASTER_PID
#
# (the nginx master: it and its worker are the peer's processes) and runs until SIGTERM or SIGINT, then stops nginx and removes the directory.
# PUBLISH_PORT defaults to PORT: publishing is then on the subscribers' listener.
#
# URL templates ({channel}: 1-64 of [A-Za-z0-9_.-]):
#   subscribe, long-poll   GET  http://127.0.0.1:PORT/sub/longpoll/{channel}
#       one raw message per response; its id is in Last-Modified + Etag: send
#       them back as If-Modified-Since + If-None-Match for the next one. Without
#       them, waits for the next message. After POLL_TIMEOUT: 408.
#   subscribe, SSE         GET  http://127.0.0.1:PORT/sub/sse/{channel}
#       `id: TIME:INDEX`, `data: ...`; a `:` ping every HEARTBEAT seconds;
#       Last-Event-ID replays what is still buffered.
#   subscribe, stream      GET  http://127.0.0.1:PORT/sub/stream/{channel}
#       nchan's http-raw-stream: raw messages, each followed by "\n", chunked.
#   subscribe, WebSocket   GET  http://127.0.0.1:PORT/sub/ws/{channel} (Upgrade: websocket)
#       each message a raw text frame; a ping every HEARTBEAT seconds. A
#       subscriber only: what the client sends is not published.
#   subscribe, chunked     GET  http://127.0.0.1:PORT/sub/chunked/{channel}
#       nchan's chunked subscriber: one raw message per HTTP chunk (not driven
#       by the load generator, which needs message boundaries in the body).
#   publish                POST http://127.0.0.1:PUBLISH_PORT/pub/{channel}
#       body = message; 201 (delivered) or 202 (queued) with the channel's
#       state; `Accept: application/json` gives {"messages":..,"subscribers":..,
#       "last_message_id":"TIME:INDEX",...}.
# Not offered: forever-iframe (nchan has no such subscriber), integer ids,
# missed-message notices. 64 messages are kept per channel, as our dispatchers do.
set -uo pipefail
PEER=nchan
. "$(dirname "$0")/common.sh"

PORT=${1:-}
PUBLISH_PORT=${2:-$PORT}
HEARTBEAT=${HEARTBEAT:-15}
POLL_TIMEOUT=${POLL_TIMEOUT:-30}
REDIS_URL=${REDIS_URL:-}
check_port PORT "$PORT"
check_port PUBLISH_PORT "$PUBLISH_PORT"
check_secs HEARTBEAT "$HEARTBEAT"
check_secs POLL_TIMEOUT "$POLL_TIMEOUT"

ensure_packages nginx libnginx-mod-nchan || { echo "$PEER: could not install nginx and libnginx-mod-nchan" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
[ -f "$MODULE" ] || { echo "$PEER: $MODULE missing" >&2; exit 1; }

case "$REDIS_URL" in
    '' | redis://127.0.0.1:[0-9]*) ;;
    *) echo "$PEER: REDIS_URL must be redis://127.0.0.1:PORT, got '$REDIS_URL'" >&2; exit 2 ;;
esac

make_workdir
mkdir -p "$WORKDIR"/tmp/{body,proxy,fastcgi,uwsgi,scgi}

# With a Redis, every location keeps its channels there (nchan's
# distributed mode): ids, buffers and subscribers' messages go through it.
if [ -n "$REDIS_URL" ]; then
    redis_http="upstream cometbench_redis { nchan_redis_server \"$REDIS_URL\"; }"
    use_redis="nchan_redis_pass cometbench_redis;"
else
    redis_http=
    use_redis=
fi

CHANNEL='([A-Za-z0-9_.-]{1,64})'
publish_locations="
        location ~ \"^/pub/$CHANNEL\$\" {
            nchan_publisher;
            nchan_channel_id \$1;
            $use_redis
            nchan_message_buffer_length 64;
            nchan_message_timeout 1h;
        }"
if [ "$PUBLISH_PORT" = "$PORT" ]; then
    subscriber_publish=$publish_locations
    publish_server=
else
    subscriber_publish=
    publish_server="
    server {
        listen 127.0.0.1:$PUBLISH_PORT;
        $publish_locations
        location / { return 404; }
    }"
fi

cat > "$WORKDIR/nginx.conf" <<CONF
load_module $MODULE;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $WORKDIR/nginx.pid;
error_log stderr warn;

events {
    worker_connections 20000;
    multi_accept on;
}

http {
    access_log off;
    client_body_temp_path $WORKDIR/tmp/body;
    proxy_temp_path $WORKDIR/tmp/proxy;
    fastcgi_temp_path $WORKDIR/tmp/fastcgi;
    uwsgi_temp_path $WORKDIR/tmp/uwsgi;
    scgi_temp_path $WORKDIR/tmp/scgi;
    default_type text/plain;
    keepalive_timeout 600s;
    keepalive_requests 100000;
    client_max_body_size 64k;
    client_body_buffer_size 64k;
    nchan_max_reserved_memory 256M;
    $redis_http

    server {
        listen 127.0.0.1:$PORT backlog=4096;

        location ~ "^/sub/longpoll/$CHANNEL\$" {
            nchan_subscriber longpoll;
            nchan_channel_id \$1;
            $use_redis
            nchan_subscriber_first_message newest;
            nchan_subscriber_timeout ${POLL_TIMEOUT}s;
        }
        location ~ "^/sub/sse/$CHANNEL\$" {
            nchan_subscriber eventsource;
            nchan_channel_id \$1;
            $use_redis
            nchan_subscriber_first_message newest;
            nchan_eventsource_ping_interval ${HEARTBEAT};
        }
        location ~ "^/sub/stream/$CHANNEL\$" {
            nchan_subscriber http-raw-stream;
            nchan_channel_id \$1;
            $use_redis
            nchan_subscriber_first_message newest;
        }
        location ~ "^/sub/ws/$CHANNEL\$" {
            nchan_subscriber websocket;
            nchan_channel_id \$1;
            nchan_subscriber_first_message newest;
            nchan_websocket_ping_interval ${HEARTBEAT};
        }
        location ~ "^/sub/chunked/$CHANNEL\$" {
            nchan_subscriber chunked;
            nchan_channel_id \$1;
            $use_redis
            nchan_subscriber_first_message newest;
        }
        location = /ready { return 200 "ok\n"; }
        $subscriber_publish
        location / { return 404; }
    }
    $publish_server
}
CONF

# nginx logs to stderr (-e, error_log), which the coordinator keeps.
"$NGINX" -t -q -p "$WORKDIR" -c "$WORKDIR/nginx.conf" -e stderr >&2 \
    || { echo "$PEER: nginx refused the configuration (see above)" >&2; exit 1; }
"$NGINX" -p "$WORKDIR" -c "$WORKDIR/nginx.conf" -e stderr &
MASTER=$!
CHILDREN+=($MASTER)

ready() { http_probe "$PORT" /ready && http_probe "$PUBLISH_PORT" /pub/__ready; }
wait_ready 30 ready || exit 1
echo "ready 127.0.0.1:$PORT publish 127.0.0.1:$PUBLISH_PORT pid $MASTER"
serve_until_stopped
