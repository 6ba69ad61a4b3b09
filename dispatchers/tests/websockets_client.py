"""An independent WebSocket client for cometbench: Python's `websockets`
library (Debian python3-websockets), driven by dispatchers/tests/websockets.rs.

    python3 websockets_client.py HOST:PORT TOKEN ORIGIN

The server must keep a backlog of 4 messages, take messages of at most 1,024
bytes, ping every second, ask TOKEN of publishers and allow ORIGIN only. The script checks
nothing itself: it does each step and prints one JSON object of what it saw,
which the Rust test judges. A step that raises is reported with its error.
"""

import asyncio
import json
import sys
import time
import urllib.request

import websockets
from websockets.frames import OP_CONT, OP_TEXT

ADDR, TOKEN, ORIGIN = sys.argv[1], sys.argv[2], sys.argv[3]
URL = f"ws://{ADDR}/sub/py?transport=ws"


def http_publish(data):
    req = urllib.request.Request(
        f"http://{ADDR}/pub/py",
        data=data.encode(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["id"]


async def publish(data):
    return await asyncio.get_running_loop().run_in_executor(None, http_publish, data)


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def closed_with(ws, send):
    """Does `send` on `ws` and returns the close code the server sent."""
    await send(ws)
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def fresh(query="&token=" + TOKEN, **kw):
    return await websockets.connect(
        URL + query, ping_interval=None, max_size=None, origin=ORIGIN, **kw
    )


async def refused(url, **kw):
    """The status a handshake was refused with (None if it was accepted)."""
    try:
        ws = await websockets.connect(url, **kw)
    except websockets.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return None


async def main():
    seen = {}
    # Kept open all along, answering the server's pings by itself: a client
    # that did not would be dropped after two heartbeats.
    keeper = await fresh()
    kept_since = time.monotonic()
    seen["extensions"] = [str(e) for e in keeper.extensions]

    a = await fresh()
    b = await fresh("", extra_headers={"Authorization": f"Bearer {TOKEN}"})
    await a.send("hello from a")
    seen["a_own"] = await recv_json(a)
    seen["b_from_a"] = await recv_json(b)
    seen["http_id"] = await publish("from http")
    seen["a_http"] = await recv_json(a)
    await b.send(["frag", "mented ", "é"])
    seen["a_fragmented"] = await recv_json(a)
    pong = await a.ping(b"py")
    await asyncio.wait_for(pong, 10)
    seen["ping_answered"] = True

    resumed = await fresh("&since=2")
    seen["resumed"] = await recv_json(resumed)
    for i in range(6):
        await publish(f"backlog {i}")
    late = await fresh("&since=1")
    seen["late"] = [await recv_json(late) for _ in range(5)]

    codes = {}
    codes["binary"] = await closed_with(await fresh(), lambda w: w.send(b"\x00\x01"))
    codes["too_big"] = await closed_with(await fresh(), lambda w: w.send("x" * 2000))
    codes["fragments_too_big"] = await closed_with(
        await fresh(), lambda w: w.send(["x" * 600, "y" * 600])
    )
    codes["not_utf8"] = await closed_with(
        await fresh(), lambda w: w.write_frame(True, OP_TEXT, b"caf\xe9")
    )
    codes["continuation_alone"] = await closed_with(
        await fresh(), lambda w: w.write_frame(True, OP_CONT, b"x")
    )
    codes["no_token"] = await closed_with(await fresh(""), lambda w: w.send("hi"))
    echo = await fresh()
    await echo.close(code=4000, reason="bye")
    codes["echoed_4000"] = echo.close_code
    seen["codes"] = codes

    seen["bad_channel"] = await refused(
        f"ws://{ADDR}/sub/bad%2Fname?transport=ws", origin=ORIGIN
    )
    seen["wrong_origin"] = await refused(URL, origin="http://evil.example")
    seen["no_origin"] = await refused(URL)

    await asyncio.sleep(max(0.0, 3.2 - (time.monotonic() - kept_since)))
    seen["keeper_open"] = keeper.open
    await keeper.send("still here")
    # Everything published on the channel came to it too: read up to its own.
    seen["keeper_got"] = []
    while not seen["keeper_got"] or seen["keeper_got"][-1] != "still here":
        seen["keeper_got"].append((await recv_json(keeper))["data"])
    for ws in (keeper, a, b, resumed, late):
        await ws.close()
    print(json.dumps(seen))


asyncio.run(main())
