"""The HTTP API (CONTRACT section 4): :func:`create_app` builds it over an audit log,
:func:`serve` runs it."""

from __future__ import annotations

from trailkeeper.api.app import create_app
from trailkeeper.api.server import serve

__all__ = ["create_app", "serve"]
