#!/usr/bin/env python3
"""Fault experiments against a running cometbench server (python3, stdlib only).

Starts nothing itself: give it the server's address and pid.

  storm.py storm     --addr 127.0.0.1:PORT --pid PID [--n 10000] [--mode close|reset]
  storm.py slowloris --addr 127.0.0.1:PORT --pid PID [--n 2000]
  storm.py slow      --addr 127.0.0.1:PORT --pid PID [--slow 20 --healthy 5]

storm: records the baseline (RSS, open fds, threads from /proc; connections and
  subscribers from /stats), opens N subscribers (SSE by default), waits until
  /stats shows them, closes them all at once (FIN after draining what was
  received, or RST with SO_LINGER 0), then samples every 100 ms for --watch
  seconds and prints when each figure first got back within 5% of baseline.
slowloris: N connections send a request head one byte at a time and never
  finish it; prints when the server closed each (seconds after its connect)
  while a few SSE subscribers keep receiving a message published every 200 ms.
slow: subscribers with a small SO_RCVBUF that never read, and healthy ones that
  do, while 8 KiB messages are published at ~50/s; prints dropped_slow, peak
  server RSS and the healthy subscribers' delivery latency.

`--stats ADDR` reads /stats from another listener (serve --publish-listen),
needed when every worker of a thread pool holds a subscriber. Clients bind to
the --sources loopback addresses in turn so that TIME_WAIT from earlier runs
does not exhaust ephemeral ports.
"""

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time

IP_BIND_ADDRESS_NO_PORT = 24


def parse_addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


# ----- server figures -----


def proc_figures(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_kb": rss, "fds": fds, "threads": threads}


def http(addr, raw, timeout=5.0):
    """One request on a new connection (Connection: close); returns (status, body)."""
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(raw)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


def stats(addr):
    status, body = http(addr, b"GET /stats HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n")
    if status != 200:
        raise RuntimeError(f"/stats answered {status}")
    return json.loads(body)


def publish(addr, channel, data):
    body = data.encode()
    raw = (
        f"POST /pub/{channel} HTTP/1.1\r\nHost: s\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return http(addr, raw)


def sample(pid, stats_addr):
    # /proc first: the /stats request's own connection is not counted in it.
    fig = proc_figures(pid)
    try:
        st = stats(stats_addr)
        fig["connections"] = st["connections"]
        fig["subscribers"] = st["subscribers"]
        fig["dropped_slow"] = st.get("dropped_slow", 0)
    except Exception as e:  # noqa: BLE001 - a busy server may not answer in time
        fig["connections"] = fig["subscribers"] = None
        fig["error"] = str(e)
    return fig


def within(value, base, tol):
    if value is None:
        return False
    # 5% of the baseline, and never less than exact for small counts.
    return value <= base + int(base * tol)


# ----- client sockets -----


class Sources:
    def __init__(self, spec):
        self.addrs = []
        for part in spec.split(","):
            if "-" in part:
                a, b = part.split("-")
                pa, pb = a.rsplit(".", 1), b.rsplit(".", 1)
                for i in range(int(pa[1]), int(pb[1]) + 1):
                    self.addrs.append(f"{pa[0]}.{i}")
            elif part:
                self.addrs.append(part)
        self.i = 0

    def socket(self, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if self.addrs:
            src = self.addrs[self.i % len(self.addrs)]
            self.i += 1
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
        s.setblocking(False)
        return s


def open_many(addr, n, request, sources, inflight=256, rcvbuf=None, timeout=60.0, drain=True):
    """Opens n connections and sends `request` on each, at most `inflight`
    connects pending at a time. Returns the sockets (non-blocking)."""
    sel = selectors.DefaultSelector()
    done = []
    pending = 0
    started = 0
    end = time.monotonic() + timeout
    while len(done) < n and time.monotonic() < end:
        while pending < inflight and started < n:
            s = sources.socket(rcvbuf)
            err = s.connect_ex(addr)
            if err not in (0, 115):  # EINPROGRESS
                s.close()
                raise OSError(err, os.strerror(err))
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
            started += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                s.close()
                started -= 1  # try again
                continue
            s.send(request)
            done.append(s)
    sel.close()
    if len(done) < n:
        print(f"warning: only {len(done)} of {n} connections opened", file=sys.stderr)
    return done


def drain_all(socks):
    """Reads whatever is waiting on each socket; returns bytes read and the
    number that are closed by the server."""
    total = closed = 0
    for s in socks:
        while True:
            try:
                b = s.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                closed += 1
                break
            if not b:
                closed += 1
                break
            total += len(b)
    return total, closed


# ----- storm -----


def cmd_storm(a):
    addr = parse_addr(a.addr)
    stats_addr = parse_addr(a.stats or a.addr)
    sources = Sources(a.sources)
    time.sleep(0.2)
    base = sample(a.pid, stats_addr)
    print(f"baseline: {json.dumps(base)}", flush=True)
    if a.transport == "longpoll":
        path = f"/sub/{a.channel}?transport=longpoll&timeout=600"
    else:
        path = f"/sub/{a.channel}?transport={a.transport}"
    req = f"GET {path} HTTP/1.1\r\nHost: s\r\n\r\n".encode()
    t0 = time.monotonic()
    socks = open_many(addr, a.n, req, sources)
    print(f"opened {len(socks)} in {time.monotonic() - t0:.1f}s", flush=True)
    end = time.monotonic() + a.ramp_timeout
    held = None
    while time.monotonic() < end:
        drain_all(socks)
        held = sample(a.pid, stats_addr)
        if (held.get("subscribers") or 0) >= base["subscribers"] + len(socks):
            break
        time.sleep(0.2)
    drain_all(socks)
    held = sample(a.pid, stats_addr)
    print(f"held: {json.dumps(held)}", flush=True)
    if a.mode == "reset":
        linger = struct.pack("ii", 1, 0)
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    else:
        # Unread bytes make close() send RST: read everything first.
        drain_all(socks)
    t_close = time.monotonic()
    for s in socks:
        s.close()
    print(f"closed {len(socks)} ({a.mode}) in {time.monotonic() - t_close:.3f}s", flush=True)
    keys = ["rss_kb", "fds", "threads", "connections", "subscribers"]
    first = {k: None for k in keys}
    last = None
    while time.monotonic() < t_close + a.watch:
        time.sleep(0.1)
        now = time.monotonic() - t_close
        last = sample(a.pid, stats_addr)
        for k in keys:
            ok = within(last.get(k), base[k], a.tol)
            if ok and first[k] is None:
                first[k] = now
            elif not ok and first[k] is not None and k != "rss_kb":
                # Count the recovery from when it stays back.
                first[k] = None
        if a.stop_early and all(first[k] is not None for k in keys) and now > 2:
            break
    print(f"after: {json.dumps(last)}")
    result = {
        "mode": a.mode,
        "n": len(socks),
        "baseline": base,
        "held": held,
        "after": last,
        "recovered_s": {k: (round(v, 2) if v is not None else None) for k, v in first.items()},
    }
    for k in keys:
        v = first[k]
        state = f"{v:.1f}s" if v is not None else f"NOT within {a.tol:.0%} after {a.watch:.0f}s"
        print(f"  {k:12} baseline {base[k]!s:>9} held {held.get(k)!s:>9} after {last.get(k)!s:>9}  back: {state}")
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if all(first[k] is not None for k in keys) else 1


# ----- slowloris -----


def cmd_slowloris(a):
    addr = parse_addr(a.addr)
    stats_addr = parse_addr(a.stats or a.addr)
    sources = Sources(a.sources)
    base = sample(a.pid, stats_addr)
    print(f"baseline: {json.dumps(base)}", flush=True)
    # Healthy subscribers first, so that a thread pool has served them.
    live = []
    for _ in range(a.live):
        s = socket.create_connection(addr)
        s.sendall(b"GET /sub/live?transport=sse HTTP/1.1\r\nHost: s\r\n\r\n")
        s.setblocking(False)
        live.append(s)
    counts = [0] * len(live)
    stop = threading.Event()
    lat = []

    def publisher():
        while not stop.is_set():
            try:
                publish(stats_addr, "live", f"t={time.time():.6f}")
            except OSError:
                pass
            time.sleep(0.2)

    pub = threading.Thread(target=publisher, daemon=True)
    pub.start()
    head = b"GET /sub/slow HTTP/1.1\r\nHost: s\r\n" + b"X-Slow: " + b"a" * 100000
    sel = selectors.DefaultSelector()
    conns = {}
    t_open = time.monotonic()
    socks = open_many(addr, a.n, b"", sources, timeout=30)
    t_ready = time.monotonic()
    print(f"opened {len(socks)} attackers in {t_ready - t_open:.1f}s", flush=True)
    for s in socks:
        conns[s] = {"t": t_ready, "pos": 0, "closed": None, "answer": b""}
        sel.register(s, selectors.EVENT_READ)
    for s in live:
        sel.register(s, selectors.EVENT_READ, data="live")
    next_byte = time.monotonic()
    end = time.monotonic() + a.watch
    open_left = len(conns)
    while time.monotonic() < end and open_left > 0:
        now = time.monotonic()
        if now >= next_byte:
            for s, c in conns.items():
                if c["closed"] is None:
                    try:
                        s.send(head[c["pos"]: c["pos"] + 1])
                        c["pos"] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        pass
            next_byte = now + a.interval
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            if key.data == "live":
                i = live.index(s)
                try:
                    b = s.recv(65536)
                except BlockingIOError:
                    continue
                for line in b.split(b"\n"):
                    if line.startswith(b"data: t="):
                        counts[i] += 1
                        lat.append(time.time() - float(line[8:]))
                continue
            c = conns[s]
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if b:
                c["answer"] += b
                continue
            c["closed"] = time.monotonic() - c["t"]
            sel.unregister(s)
            s.close()
            open_left -= 1
    stop.set()
    times = sorted(c["closed"] for c in conns.values() if c["closed"] is not None)
    answers = {}
    for c in conns.values():
        if c["closed"] is not None:
            k = c["answer"].split(b"\r\n", 1)[0].decode(errors="replace") or "(no answer)"
            answers[k] = answers.get(k, 0) + 1
    still = len(conns) - len(times)
    after = sample(a.pid, stats_addr)
    lat.sort()

    def pct(xs, p):
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 1) if xs else None

    result = {
        "attackers": len(conns),
        "closed": len(times),
        "still_open": still,
        "close_s_min": round(times[0], 2) if times else None,
        "close_s_median": round(times[len(times) // 2], 2) if times else None,
        "close_s_max": round(times[-1], 2) if times else None,
        "answers": answers,
        "live_received": counts,
        "live_latency_ms_p50": pct(lat, 0.5),
        "live_latency_ms_p99": pct(lat, 0.99),
        "after": after,
    }
    for s in live:
        s.close()
    for s, c in conns.items():
        if c["closed"] is None:
            s.close()
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if still == 0 else 1


# ----- slow consumers -----


def cmd_slow(a):
    addr = parse_addr(a.addr)
    stats_addr = parse_addr(a.stats or a.addr)
    sources = Sources(a.sources)
    base = sample(a.pid, stats_addr)
    print(f"baseline: {json.dumps(base)}", flush=True)
    req = b"GET /sub/heavy?transport=sse HTTP/1.1\r\nHost: s\r\n\r\n"
    slow = open_many(addr, a.slow, req, sources, rcvbuf=a.rcvbuf)
    healthy = open_many(addr, a.healthy, req, sources)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        st = sample(a.pid, stats_addr)
        if (st.get("subscribers") or 0) >= base["subscribers"] + a.slow + a.healthy:
            break
        time.sleep(0.2)
    stop = threading.Event()
    lat = []
    got = [0] * len(healthy)
    closed_by_server = [False] * len(healthy)

    def reader():
        sel = selectors.DefaultSelector()
        for i, s in enumerate(healthy):
            sel.register(s, selectors.EVENT_READ, data=i)
        bufs = [b""] * len(healthy)
        while not stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                i = key.data
                try:
                    b = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    b = b""
                if not b:
                    closed_by_server[i] = True
                    sel.unregister(key.fileobj)
                    continue
                buf = bufs[i] + b
                *lines, bufs[i] = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"data: t="):
                        got[i] += 1
                        lat.append(time.time() - float(line[8:25].split(b" ")[0]))

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    pad = "x" * (a.size - 40)
    peak_rss = 0
    t0 = time.monotonic()
    sent = 0
    next_pub = t0
    samples = []
    while time.monotonic() < t0 + a.duration:
        now = time.monotonic()
        if now >= next_pub:
            publish(stats_addr, "heavy", f"t={time.time():.6f} {pad}")
            sent += 1
            next_pub += 1.0 / a.rate
        if int((now - t0) * 2) > len(samples):
            fig = proc_figures(a.pid)
            peak_rss = max(peak_rss, fig["rss_kb"])
            samples.append(fig["rss_kb"])
        time.sleep(max(0.0, min(next_pub - time.monotonic(), 0.02)))
    time.sleep(1)
    stop.set()
    after = sample(a.pid, stats_addr)
    lat.sort()

    def pct(xs, p):
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 1) if xs else None

    result = {
        "published": sent,
        "slow": a.slow,
        "healthy": a.healthy,
        "dropped_slow": after.get("dropped_slow", 0) - base.get("dropped_slow", 0),
        "subscribers_after": after.get("subscribers"),
        "healthy_received": got,
        "healthy_closed_by_server": sum(closed_by_server),
        "healthy_latency_ms_p50": pct(lat, 0.5),
        "healthy_latency_ms_p99": pct(lat, 0.99),
        "healthy_latency_ms_max": pct(lat, 1.0),
        "baseline_rss_kb": base["rss_kb"],
        "peak_rss_kb": peak_rss,
        "after": after,
    }
    for s in slow + healthy:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("storm", "slowloris", "slow"):
        q = sub.add_parser(name)
        q.add_argument("--addr", required=True)
        q.add_argument("--pid", type=int, required=True)
        q.add_argument("--stats", help="address for /stats and publishing (default --addr)")
        q.add_argument("--sources", default="127.0.0.2-127.0.0.9")
    s = sub.choices["storm"]
    s.add_argument("--n", type=int, default=10000)
    s.add_argument("--mode", choices=["close", "reset"], default="close")
    s.add_argument("--transport", default="sse")
    s.add_argument("--channel", default="storm")
    s.add_argument("--watch", type=float, default=15.0)
    s.add_argument("--tol", type=float, default=0.05)
    s.add_argument("--ramp-timeout", type=float, default=60.0)
    s.add_argument("--stop-early", action="store_true", help="stop watching once all are back")
    s = sub.choices["slowloris"]
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--live", type=int, default=5)
    s.add_argument("--interval", type=float, default=0.5, help="seconds between bytes")
    s.add_argument("--watch", type=float, default=30.0)
    s = sub.choices["slow"]
    s.add_argument("--slow", type=int, default=20)
    s.add_argument("--healthy", type=int, default=5)
    s.add_argument("--rcvbuf", type=int, default=4096)
    s.add_argument("--size", type=int, default=8192)
    s.add_argument("--rate", type=float, default=50.0)
    s.add_argument("--duration", type=float, default=30.0)
    a = p.parse_args()
    return {"storm": cmd_storm, "slowloris": cmd_slowloris, "slow": cmd_slow}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
