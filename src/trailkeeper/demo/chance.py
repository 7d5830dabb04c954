"""Chance: quick draws from a generator, the moments episodes start at, and the dice of one
episode's script.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from trailkeeper.demo.clock import _LATEST_START, _WEEKDAYS, _WORKING_DAYS, DAY, HOUR, SECOND

_T = TypeVar("_T")

_MASK64 = (1 << 64) - 1


def _pick(rng: random.Random, options: Sequence[_T]) -> _T:
    """``rng.choice`` without its pure-Python rejection sampling: this runs per event."""
    return options[int(rng.random() * len(options))]


def _pause(rng: random.Random, low: float, high: float) -> int:
    """``low`` to ``high`` seconds, in microseconds."""
    return int((low + (high - low) * rng.random()) * SECOND)


def _working_moment(rng: random.Random, utc_offset: int, earliest: int) -> int:
    """A moment of someone's working day: mostly a weekday, 7:30 to 19:00 local time."""
    while True:
        day = _pick(rng, _WORKING_DAYS)
        local_hour = rng.triangular(7.5, 19.0, 10.5)
        at = day * DAY + int((local_hour - utc_offset) * HOUR)
        if earliest <= at < _LATEST_START:
            return at


def _story_moment(rng: random.Random, first_day: int, last_day: int, utc_hour: float) -> int:
    """A weekday between two days of the window, at about an hour (UTC) of that day."""
    day = rng.choice([d for d in _WEEKDAYS if first_day <= d <= last_day])
    return day * DAY + int(utc_hour * HOUR) + _pause(rng, 0, 40 * 60)


class _Dice:
    """The randomness of one episode's script: a 64-bit linear congruential generator with Knuth's
    MMIX constants, read from its top 53 bits. A script draws about a dozen numbers; seeding a
    Mersenne Twister for each of hundreds of thousands of episodes, twice, would cost more
    than the scripts themselves. Good enough for jitter; never for anything secret."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def random(self) -> float:
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return (self._state >> 11) * 2.0**-53

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def choice(self, options: Sequence[_T]) -> _T:
        return options[int(self.random() * len(options))]

    def pause(self, low: float, high: float) -> int:
        """``low`` to ``high`` seconds, in microseconds."""
        # random() inlined: this is the most frequent draw of every script.
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return int((low + (high - low) * ((self._state >> 11) * 2.0**-53)) * SECOND)
