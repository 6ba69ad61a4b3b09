"""The GRIP backend behind Pushpin for cometbench (python3 standard library).

    python3 grip_backend.py PORT_FILE HEARTBEAT POLL_TIMEOUT

Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening) and
answers Pushpin's forwarded requests, keep-alive, from one asyncio loop (every
subscribe passes through here: http.server's thread per connection could not
keep up with thousands per second, and Pushpin answered 502):

    GET /sub/{channel}?transport=longpoll|sse|stream|iframe
        Grip-Channel: {channel}; Grip-Hold: stream (sse, stream, iframe) with
        the transport's content type, prelude and keep-alive, or response
        (longpoll) with Grip-Timeout: POLL_TIMEOUT and `[]` as the answer when
        nothing was published in time. Without ?transport=, Accept:
        text/event-stream means sse, anything else longpoll (as docs/DESIGN.md,
        Wire protocol, says).
    POST /sub/{channel}?transport=ws  (WebSocket-over-HTTP: the route's
        `over_http`) Content-Type application/websocket-events: to OPEN,
        OPEN and the GRIP control messages subscribing the socket to
        {channel} and asking for a ping every HEARTBEAT seconds it is idle
        (Sec-WebSocket-Extensions: grip); to a client's CLOSE, CLOSE with
        its code; to TEXT (a publish over the socket, which this backend does
        not take), nothing; to DISCONNECT, nothing.
    GET /ready
        200 "ok", no GRIP: proves the path client -> Pushpin -> backend.

Messages never pass through here: they are published to Pushpin's publish
port as GRIP items, already framed for the transport (see loadgen/src/publisher.rs).
"""

import asyncio
import json
import os
import re
import sys
import urllib.parse

CHANNEL = re.compile(rb"[A-Za-z0-9_.-]{1,64}")
TRANSPORTS = ("longpoll", "sse", "stream", "iframe", "ws")
MAX_HEAD = 16384

# As comet::transport::prelude: at least 1 KiB before the first message.
IFRAME_PRELUDE = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>comet</title></head><body>\n<!--'
    + " " * 1024
    + "-->\n"
)


def response(status, headers, body):
    text = body.encode()
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(text)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + text


def plain(status, text):
    return response(status, [("Content-Type", "text/plain")], text)


def ws_events(data):
    """The events of a WebSocket-over-HTTP body: (type, content) pairs."""
    events = []
    while data:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        kind, _, size = line.partition(b" ")
        content = b""
        if size:
            n = int(size, 16)
            content, rest = rest[:n], rest[n + 2 :]
        events.append((kind, content))
        data = rest
    return events


def ws_event(kind, content=b""):
    if not content and kind != b"TEXT":
        return kind + b"\r\n"
    return kind + b" %x\r\n" % len(content) + content + b"\r\n"


def ws_answer(body):
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n"
        b"Sec-WebSocket-Extensions: grip\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


class Backend:
    def __init__(self, heartbeat, poll_timeout):
        self.heartbeat = heartbeat
        keep = {"sse": ":\\n\\n", "stream": "\\n", "iframe": "<!-- -->\\n"}
        ctype = {
            "sse": "text/event-stream",
            "stream": "application/x-ndjson",
            "iframe": "text/html; charset=utf-8",
        }
        prelude = {"sse": "retry: 3000\n\n", "stream": "", "iframe": IFRAME_PRELUDE}
        # Per transport: the headers and body after Grip-Channel.
        self.tail = {
            "longpoll": response(
                "200 OK",
                [
                    ("Grip-Hold", "response"),
                    ("Grip-Timeout", str(poll_timeout)),
                    ("Content-Type", "application/json"),
                ],
                "[]",
            )
        }
        for t in ("sse", "stream", "iframe"):
            self.tail[t] = response(
                "200 OK",
                [
                    ("Grip-Hold", "stream"),
                    ("Grip-Keep-Alive", f"{keep[t]}; format=cstring; timeout={heartbeat}"),
                    ("Content-Type", ctype[t]),
                    ("Cache-Control", "no-cache"),
                ],
                prelude[t],
            )

    def answer(self, target, accept):
        url = urllib.parse.urlsplit(target.decode("latin-1"))
        if url.path == "/ready":
            return plain("200 OK", "ok\n")
        if not url.path.startswith("/sub/"):
            return plain("404 Not Found", "not found\n")
        channel = url.path[5:].encode("latin-1")
        if not CHANNEL.fullmatch(channel):
            return plain("400 Bad Request", "bad channel\n")
        transport = urllib.parse.parse_qs(url.query).get("transport", [""])[0]
        if not transport:
            transport = "sse" if b"text/event-stream" in accept else "longpoll"
        if transport not in TRANSPORTS:
            return plain("400 Bad Request", "bad transport\n")
        if transport == "ws":
            return plain("400 Bad Request", "WebSocket-over-HTTP is a POST\n")
        # The status line, then Grip-Channel, then the transport's part.
        head = self.tail[transport]
        nl = head.index(b"\r\n") + 2
        return head[:nl] + b"Grip-Channel: " + channel + b"\r\n" + head[nl:]

    def websocket(self, target, body):
        """A WebSocket-over-HTTP request: Pushpin's events from one client."""
        url = urllib.parse.urlsplit(target.decode("latin-1"))
        channel = url.path[5:] if url.path.startswith("/sub/") else ""
        if not CHANNEL.fullmatch(channel.encode("latin-1")):
            return plain("400 Bad Request", "bad channel\n")
        out = b""
        for kind, content in ws_events(body):
            if kind == b"OPEN":
                out += ws_event(b"OPEN")
                for control in (
                    {"type": "subscribe", "channel": channel},
                    {"type": "keep-alive", "message-type": "ping", "content": "", "timeout": self.heartbeat},
                ):
                    out += ws_event(b"TEXT", b"c:" + json.dumps(control).encode())
            elif kind == b"CLOSE":
                out += ws_event(b"CLOSE", content)
        return ws_answer(out)


class Conn(asyncio.Protocol):
    backend = None

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.skip = 0
        # A WebSocket-over-HTTP request waiting for its body: (target, length, close).
        self.pending = None

    def data_received(self, data):
        self.buf += data
        while True:
            if self.pending:
                target, length, close = self.pending
                if len(self.buf) < length:
                    return
                body, self.buf = self.buf[:length], self.buf[length:]
                self.pending = None
                self.t.write(self.backend.websocket(target, body))
                if close:
                    self.t.close()
                    return
                continue
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf = self.buf[n:]
                self.skip -= n
                if self.skip:
                    return
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.t.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                self.t.write(plain("400 Bad Request", "bad request\n"))
                self.t.close()
                return
            method, target, version = parts
            accept, close, length, ctype = b"", version == b"HTTP/1.0", 0, b""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name, value = name.strip().lower(), value.strip()
                if name == b"accept":
                    accept = value
                elif name == b"connection":
                    close = value.lower() == b"close"
                elif name == b"content-length":
                    length = int(value) if value.isdigit() else 0
                elif name == b"content-type":
                    ctype = value.lower()
            if method == b"POST" and ctype == b"application/websocket-events":
                self.pending = (target, length, close)
                continue
            self.skip = length
            if method == b"GET":
                out = self.backend.answer(target, accept)
            else:
                out = plain("405 Method Not Allowed", "GET only\n")
            self.t.write(out)
            if close:
                self.t.close()
                return


async def serve(port_file, heartbeat, poll_timeout):
    Conn.backend = Backend(heartbeat, poll_timeout)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, port_file)
    async with server:
        await server.serve_forever()


def main():
    port_file, heartbeat, poll_timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        asyncio.run(serve(port_file, heartbeat, poll_timeout))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
