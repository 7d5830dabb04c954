"""Canonical JSON: byte-identical to the rfc8785 reference on every value an event can hold."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.canonical import canonical_json
from trailkeeper.events import prepare_batch

# Every code point but lone surrogates, which JSON text cannot carry and validation refuses.
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
safe_ints = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | safe_ints | finite_floats | any_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400)
@given(json_values)
def test_canonical_json_matches_the_reference(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+FF5E sorts before U+1F600 by code point but after it in UTF-16 (surrogate 0xD83D).
    value = {"\uff5e": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("😀".encode()) < canonical_json(value).index("～".encode())


def test_control_characters_are_escaped_as_jcs_says() -> None:
    assert (
        canonical_json('\x00\x08\t\n\x0b\x0c\r\x1f\x7f"\\')
        == b'"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\x7f\\"\\\\"'
    )


def test_numbers_print_as_ecmascript_does() -> None:
    assert canonical_json([1.0, 1e21, 0.1, -0.0, 5e-7]) == b"[1,1e+21,0.1,0,5e-7]"


actor = st.fixed_dictionaries(
    {"type": st.sampled_from(["user", "agent", "service"]), "id": any_text.filter(bool)},
    optional={"name": any_text.filter(bool), "email": any_text.filter(bool)},
)
events = st.fixed_dictionaries(
    {
        "category": st.sampled_from(["authentication", "workflow", "integration"]),
        "action": st.from_regex(r"[a-z]{1,8}(\.[a-z_]{1,8}){0,3}", fullmatch=True),
        "actor": actor,
    },
    optional={
        "description": st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
        "metadata": st.dictionaries(any_text, json_values, max_size=6),
        "targets": st.lists(
            st.fixed_dictionaries({"type": st.just("deal"), "id": any_text.filter(bool)}), max_size=3
        ),
        "workflow": st.fixed_dictionaries(
            {"run_id": any_text.filter(bool)}, optional={"step": any_text.filter(bool)}
        ),
    },
)


@settings(max_examples=300)
@given(events, st.integers(min_value=0, max_value=2**40))
def test_leaf_bytes_of_a_prepared_event_match_the_reference(event: dict[str, Any], seq: int) -> None:
    prepared = prepare_batch("acme", [event])[0]
    record = {**prepared.record, "seq": seq}
    assert prepared.leaf_bytes(seq) == rfc8785.dumps(record)
