"""HTTP ingest over loopback: a ``trailkeeper serve`` process, and one client process (this one).

Batches of 500 as fast as the server acknowledges them, then single-event requests paced at
200 a second for their latency; the floor is the embedded ingest of the same batches, in the
same run.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.events import generate
from trailkeeper import AuditLog

HTTP_BATCH = 500
CONCURRENCY = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str, env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "trailkeeper.cli", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout.strip()


def http_ingest(workdir: Path, events: int) -> dict[str, float]:
    env = {**os.environ, "TRAILKEEPER_DB": f"sqlite:///{workdir / 'http.db'}"}
    key = _cli("keys", "create", "--tenant", "bench", "--scope", "events:write", env=env)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for _ in range(200):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            bodies = [
                json.dumps({"events": generate(start, HTTP_BATCH, events)}).encode()
                for start in range(0, events, HTTP_BATCH)
            ]

            def send(body: bytes) -> None:
                response = client.post("/v1/events", content=body)
                if response.status_code != 201:
                    raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")

            began = time.perf_counter()
            # Several requests in flight from this one process (as a producer with several
            # workers would send), so that the server's writer commits them together.
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(send, bodies))
            rate = events / (time.perf_counter() - began)

            singles = [json.dumps(e).encode() for e in generate(events, 2000, events + 2000)]
            latencies = []
            interval = 1 / 200
            next_at = time.perf_counter()
            for body in singles:
                next_at += interval
                sent = time.perf_counter()
                response = client.post("/v1/events", content=body)
                latencies.append((time.perf_counter() - sent) * 1000)
                if response.status_code != 201:
                    raise RuntimeError(f"single ingest answered {response.status_code}")
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
    finally:
        server.terminate()
        server.wait(timeout=30)

    floor = embedded_floor(workdir, events)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"http ingest: {events:,} events in batches of {HTTP_BATCH}, {CONCURRENCY} requests in flight "
        f"= {rate:,.0f} events/s"
    )
    print(f"floor (embedded record_many, same batches): {floor:,.0f} events/s; ratio {rate / floor:.2f}")
    print(f"single events at 200/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(latencies)} requests)")
    return {"http_ingest": rate, "embedded_floor": floor, "p50_ms": p50, "p99_ms": p99}


def embedded_floor(workdir: Path, events: int) -> float:
    batches = [generate(start, HTTP_BATCH, events) for start in range(0, events, HTTP_BATCH)]
    with AuditLog.open(f"sqlite:///{workdir / 'floor-embedded.db'}", key_dir=workdir / "keys") as log:
        began = time.perf_counter()
        for batch in batches:
            log.record_many("bench", batch)
        return events / (time.perf_counter() - began)
