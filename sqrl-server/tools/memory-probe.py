#!/usr/bin/env python3
"""Memory of one sqrl-server instance holding many pending logins and open
event streams: starts N logins through the SSP API (`/nut.sqrl`), opens S
Server-Sent Event streams on them, then reads the server's resident set size
(VmRSS, /proc/PID/status) before, during and after.

    python3 sqrl-server/tools/memory-probe.py --pid PID --url http://127.0.0.1:8080 \
        --logins 10000 --streams 1000

The server must accept that many streams from one address
(`--max-event-streams-per-address`, `--max-event-streams`,
`--max-connections-per-address`) and requests (`--rate-limit-per-second 0`).
Standard library only.
"""
import argparse
import asyncio
import json
import sys
import urllib.parse


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def request(host, port, target, keep=False):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if keep:
        return status, reader, writer
    body = await reader.read()
    writer.close()
    return status, body


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--logins", type=int, default=10000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=32)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port or 80

    before = rss_kib(args.pid)
    attempts = []
    queue = asyncio.Queue()
    for _ in range(args.logins):
        queue.put_nowait(None)

    async def starter():
        while not queue.empty():
            queue.get_nowait()
            status, body = await request(host, port, "/nut.sqrl")
            if status != 200:
                raise SystemExit(f"/nut.sqrl answered {status}: {body[:200]!r}")
            attempt = json.loads(body)
            attempts.append((attempt["nut"], attempt["pag"]))

    await asyncio.gather(*(starter() for _ in range(args.parallel)))
    pending = rss_kib(args.pid)

    streams = []
    for nut, pag in attempts[: args.streams]:
        status, reader, writer = await request(
            host, port, f"/login/events?nut={nut}&pag={pag}", keep=True
        )
        if status != 200:
            raise SystemExit(f"event stream refused: {status} after {len(streams)} streams")
        streams.append((reader, writer))
    await asyncio.sleep(1.0)
    # Every stream has sent its first event (`pending`) and is still open.
    alive = 0
    for reader, _ in streams:
        chunk = await asyncio.wait_for(reader.read(4096), 5)
        alive += b"pending" in chunk
    with_streams = rss_kib(args.pid)
    for _, writer in streams:
        writer.close()
    await asyncio.sleep(1.0)
    after = rss_kib(args.pid)

    print(f"server RSS before: {before / 1024:.1f} MiB")
    print(f"with {len(attempts)} pending logins: {pending / 1024:.1f} MiB")
    print(f"plus {alive} open event streams: {with_streams / 1024:.1f} MiB")
    print(f"after the streams closed: {after / 1024:.1f} MiB")
    if alive != len(streams):
        sys.exit(f"only {alive} of {len(streams)} streams reported their state")


asyncio.run(main())
