"""Reading stored records (CONTRACT section 2) for the exporters.

Records are the dicts the store returns: fields a producer left out are absent. A record
whose body retention purged keeps only its place in the log (``tenant``, ``seq``,
``leaf_hash``, ``purged``); only the ndjson export shows those.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib import metadata as package_metadata
from typing import Any, Final

from trailkeeper.catalogue import OcsfType, lookup, ocsf_class_for

Record = Mapping[str, Any]

PRODUCT: Final = "trailkeeper"


def _product_version() -> str:
    try:
        return package_metadata.version(PRODUCT)
    except package_metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "0+unknown"


PRODUCT_VERSION: Final = _product_version()

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def is_purged(record: Record) -> bool:
    return record.get("purged") is True or "action" not in record


def part(record: Record, field: str) -> Mapping[str, Any]:
    """An object field (``actor``, ``context``...), empty when absent."""
    value = record.get(field)
    return value if isinstance(value, Mapping) else {}


def text(value: object) -> str:
    """A scalar as text; an absent value is empty."""
    return "" if value is None else str(value)


def outcome(record: Record) -> str:
    return text(record.get("outcome")) or "success"


def is_failure(record: Record) -> bool:
    return outcome(record) == "failure"


def parse_time(stamp: str) -> datetime:
    """A stored time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, always UTC) as an aware datetime."""
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def epoch_ms(stamp: str) -> int:
    # Integer arithmetic on the timedelta: a float timestamp would round some microseconds.
    return (parse_time(stamp) - _EPOCH) // _MILLISECOND


def targets_text(record: Record) -> str:
    """Targets as ``type:id`` joined by ``;``."""
    targets = record.get("targets") or ()
    return ";".join(f"{text(t.get('type'))}:{text(t.get('id'))}" for t in targets)


def actor_label(record: Record) -> str:
    """Who acted, as a person reads it: the name, else the email, else type and id."""
    actor = part(record, "actor")
    name = text(actor.get("name")) or text(actor.get("email"))
    identity = f"{text(actor.get('type'))} {text(actor.get('id'))}"
    return f"{name} ({identity})" if name else identity


def title(record: Record) -> str:
    """The catalogue's short title of the action, else the action itself."""
    action = text(record.get("action"))
    spec = lookup(action)
    return spec.title if spec is not None else action


def summary(record: Record) -> str:
    """One readable sentence: who did what, how it ended, and the description."""
    line = f"{actor_label(record)} {text(record.get('action'))} ({outcome(record)})"
    description = text(record.get("description"))
    return f"{line}: {description}" if description else line


def ocsf_type(record: Record) -> OcsfType:
    channel = part(record, "metadata").get("channel")
    return ocsf_class_for(text(record.get("category")), text(record.get("action")), channel=channel)
