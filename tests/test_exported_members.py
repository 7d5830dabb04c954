"""The public surface: what `trailkeeper` exports is what `__all__` says, and it resolves."""

from __future__ import annotations

import subprocess
import sys

import trailkeeper


def test_every_name_in_all_resolves() -> None:
    for name in trailkeeper.__all__:
        assert getattr(trailkeeper, name) is not None


def test_all_lists_the_public_names() -> None:
    assert sorted(trailkeeper.__all__) == sorted(
        [
            "AuditLog",
            "Conflict",
            "FieldError",
            "IntegrityError",
            "InvalidArgument",
            "InvalidEvent",
            "NotFound",
            "Page",
            "QueryError",
            "TrailkeeperError",
            "VerificationError",
            "__version__",
        ]
    )


def test_the_remote_client_loads_none_of_the_server() -> None:
    code = (
        "import sys, trailkeeper.client; "
        "loaded = [m for m in sys.modules if m.startswith('trailkeeper.') "
        "and not m.startswith('trailkeeper.client')]; "
        "print(','.join(sorted(loaded)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
