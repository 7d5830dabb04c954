"""Stamps: fields that every event recorded here and now should carry.

A stamp is a set of fields of an event's ``context`` and ``workflow`` objects (CONTRACT
section 2), kept in a :mod:`contextvars` variable, so that it follows the code that set it:

- asyncio: a task starts with a copy of the context of the code that created it, so stamps
  in force at ``asyncio.create_task`` or ``asyncio.gather`` reach the events recorded in the
  task. ``asyncio.to_thread`` copies the context too.
- threads start with an empty context. Wrap what they run with :func:`in_context`:
  ``threading.Thread(target=in_context(work))`` or ``executor.submit(in_context(work), item)``.
  (``loop.run_in_executor`` copies nothing either; wrap its function the same way.)

Fields given explicitly on an event win over stamped ones, field by field; and an event that
names a workflow run of its own is left with that run's fields only.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

__all__ = ["STAMPED_OBJECTS", "current_stamps", "in_context", "stamp", "stamped"]

# The event objects a stamp may fill in; everything else about an event is the caller's.
STAMPED_OBJECTS = ("context", "workflow")

_P = ParamSpec("_P")
_R = TypeVar("_R")

Stamps = Mapping[str, Mapping[str, str]]

_EMPTY: Stamps = MappingProxyType({})
_stamps: contextvars.ContextVar[Stamps] = contextvars.ContextVar("trailkeeper_stamps", default=_EMPTY)


def current_stamps() -> dict[str, dict[str, str]]:
    """The stamps in force here: what an event recorded now would be given."""
    return {name: dict(fields) for name, fields in _stamps.get().items()}


def _merged(current: Stamps, context: Mapping[str, str] | None, workflow: Mapping[str, str] | None) -> Stamps:
    merged = dict(current)
    if context:
        merged["context"] = MappingProxyType({**current.get("context", {}), **context})
    if workflow:
        merged["workflow"] = MappingProxyType({**current.get("workflow", {}), **workflow})
    return MappingProxyType(merged)


def set_stamps(
    *,
    context: Mapping[str, str] | None = None,
    workflow: Mapping[str, str] | None = None,
    new_run: bool = False,
) -> contextvars.Token[Stamps]:
    """Add stamps (inner values win); with ``new_run`` the workflow stamp is replaced as a
    whole, so that nothing of an enclosing run (its step, its name) leaks into a nested one.
    Undo with ``reset_stamps(token)`` in the same context."""
    current = _stamps.get()
    if new_run:
        current = MappingProxyType({k: v for k, v in current.items() if k != "workflow"})
    return _stamps.set(_merged(current, context, workflow))


def reset_stamps(token: contextvars.Token[Stamps]) -> None:
    _stamps.reset(token)


@contextmanager
def stamp(
    *, context: Mapping[str, str] | None = None, workflow: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Stamp these fields on every event recorded inside the block, and in the tasks and
    wrapped threads it starts: ``with stamp(context={"session_id": sid}): ...``."""
    token = set_stamps(context=context, workflow=workflow)
    try:
        yield
    finally:
        reset_stamps(token)


def stamped(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with the stamps in force filled in; explicit fields win."""
    stamps = _stamps.get()
    result = dict(event)
    for name, fields in stamps.items():
        given = result.get(name)
        if given is None:
            result[name] = dict(fields)
        elif isinstance(given, Mapping) and not _other_run(name, given, fields):
            result[name] = {**fields, **given}
        # Anything else (another run, or a value that is not an object) stays as given:
        # the event's validation, not this, says what is wrong with it.
    return result


def _other_run(name: str, given: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    # An event about another run must not borrow this run's name, trigger or step.
    return name == "workflow" and "run_id" in given and given["run_id"] != fields.get("run_id")


def in_context(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """``function`` bound to the context of this moment, stamps included, to run on another
    thread. Each call runs in its own copy of that context, so the wrapped function may run
    on several threads at once (``executor.map``), and what it sets stays its own."""
    snapshot = contextvars.copy_context()

    @functools.wraps(function)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return snapshot.copy().run(function, *args, **kwargs)

    return call
