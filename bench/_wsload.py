"""WebSocket fan-out load, in separate processes so the load generator doesn't share the server's core budget unfairly."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import random
import struct
import time

import httpx


class RawFeedClient(asyncio.Protocol):
    """A minimal WebSocket client: handshake, then time-stamps every text frame as its bytes arrive.

    It parses frame headers only (JSON is decoded after the run), answers pings, and never
    compresses, so measuring costs little CPU beside the server on a 2-core machine.
    """

    def __init__(self, path: str, port: int):
        self.path, self.port = path, port
        self.buffer = b""
        self.handshake = False
        self.messages: list[tuple[float, bytes]] = []
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buffer + data
        if not self.handshake:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(buf[:200].decode(errors="replace")))
                return
            self.handshake = True
            buf = buf[end + 4 :]
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if n - pos < head + length:
                break
            payload = buf[pos + head : pos + head + length]
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == 1:
                self.messages.append((now, payload))
                if not self.ready.done():
                    self.ready.set_result(None)
            elif opcode == 9:  # ping -> pong (masked, as a client must)
                mask = os.urandom(4)
                body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + body)
            elif opcode == 8:
                self.transport.close()
        self.buffer = buf[pos:]

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the snapshot"))


def run_readers(port: int, token: str, clients: int, seconds: float, out: str, started) -> None:
    """A process holding ``clients`` feed connections; writes (arrival time, account, cause key) of every update."""

    async def go():
        loop = asyncio.get_running_loop()
        protos = []
        for _ in range(clients):
            _, proto = await loop.create_connection(
                lambda: RawFeedClient(f"/ws/customer-health?token={token}", port), "127.0.0.1", port
            )
            protos.append(proto)
        await asyncio.gather(*(p.ready for p in protos))
        started.set()
        await asyncio.sleep(seconds)
        updates, opened, other, conflated = [], [], 0, 0
        for i, p in enumerate(protos):
            for t, payload in p.messages[1:]:
                msg = json.loads(payload)
                if msg.get("type") == "update":
                    updates.append((i, t, msg["sent_at"], (msg.get("cause") or {}).get("response_id")))
                    conflated += msg.get("conflated", 0)
                elif msg.get("type") == "intervention" and msg.get("change") == "opened":
                    opened.append((i, t, (msg.get("cause") or {}).get("response_id")))
                else:
                    other += 1
            p.transport.close()
        with open(out, "w") as fh:
            json.dump({"updates": updates, "opened": opened, "other": other, "conflated": conflated}, fh)

    asyncio.run(go())


def run_poster(base: str, ingest: str, accounts: list[str], rate: int, batch: int, seconds: float, out: str) -> None:
    """Posts ``rate`` NPS events per second in batches of ``batch`` on a fixed schedule (a slow
    answer does not delay the next POST); records when each event was sent."""

    async def go():
        sent: dict[str, float] = {}
        posts: list[dict] = []  # per POST: send and answer times, the server's stage timings
        reported, statuses = 0, {}
        rng = random.Random(7)
        today = datetime.date.today().isoformat()

        async def post(client: httpx.AsyncClient, events: list[dict]) -> None:
            nonlocal reported
            t = time.time()
            for e in events:
                sent[e["response_id"]] = t
            r = await client.post(
                f"{base}/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"}
            )
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            stages = dict(
                (part.split(";dur=")[0].strip(), float(part.split(";dur=")[1]))
                for part in r.headers.get("server-timing", "").split(",")
                if ";dur=" in part
            )
            posts.append({"first": events[0]["response_id"], "sent": t, "answered": time.time(), **stages})
            reported += r.json().get("health_updates", 0)

        tasks = []
        async with httpx.AsyncClient(timeout=60) as client:
            start = time.perf_counter()
            n = 0
            while time.perf_counter() - start < seconds:
                events = []
                for _ in range(batch):
                    n += 1
                    events.append(
                        {
                            "table": "nps_responses",
                            "response_id": f"bench-{n}",
                            "account_id": rng.choice(accounts),
                            "date": today,  # the real case: the publication is older, answers arrive today
                            "score": rng.randint(0, 10),
                        }
                    )
                tasks.append(asyncio.create_task(post(client, events)))
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            elapsed = time.perf_counter() - start
            await asyncio.gather(*tasks)
        with open(out, "w") as fh:
            json.dump(
                {"sent": sent, "posts": posts, "reported": reported, "elapsed": elapsed, "statuses": statuses}, fh
            )

    asyncio.run(go())
