"""The administrators' web console: search, timelines, proofs and integrity, in the browser.

The HTTP API's app includes it with ``app.include_router(create_console(log))``.
"""

from __future__ import annotations

from trailkeeper.web.console import create_console

__all__ = ["create_console"]
