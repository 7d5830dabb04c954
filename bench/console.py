"""The console's first search page on the benchmark's log: server time, through the ASGI app.

Signs in with a read key as a browser would (the login form and its CSRF token), then times
``GET /`` (the first page of a search, without the chart, which loads in its own frame) and a
few filtered first pages.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.testclient import TestClient

from trailkeeper import AuditLog
from trailkeeper.web import create_console

PAGES = [
    "/",
    "/?q=outcome:failure",
    "/?q=action:auth.*",
    "/?q=actor:user-0042",
    '/?q="renewal risk"',
    "/chart",
]


def console(db: Path, workdir: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    with AuditLog.open(f"sqlite:///{db}", key_dir=workdir / "keys") as log:
        _, secret = log.create_key("bench", ["events:read"])
        app = FastAPI()
        app.include_router(create_console(log))
        with TestClient(app, follow_redirects=False) as client:
            form = client.get("/login").text
            match = re.search(r'name="csrf" value="([^"]+)"', form)
            if match is None:
                raise RuntimeError("the login form has no CSRF token")
            signed_in = client.post("/login", data={"api_key": secret, "csrf": match.group(1), "next": "/"})
            if signed_in.status_code != 303:
                raise RuntimeError(f"sign-in answered {signed_in.status_code}")
            for path in PAGES:
                samples = []
                for _ in range(11):
                    began = time.perf_counter()
                    response = client.get(path)
                    samples.append((time.perf_counter() - began) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} answered {response.status_code}")
                median = statistics.median(samples)
                target = (
                    "" if path == "/chart" else (" (meets 300 ms)" if median < 300 else " (MISSES 300 ms)")
                )
                print(f"console {path}: first {samples[0]:.0f} ms, median {median:.0f} ms{target}")
                figures[path] = median
    return figures
