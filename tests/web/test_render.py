"""Values on pages: escaped, with what cannot be seen made visible."""

from __future__ import annotations

from types import SimpleNamespace

from trailkeeper.web.integrity import RunState
from trailkeeper.web.render import Templates, entity_url, load_static, visible, visible_width, when


def test_markup_in_a_value_is_escaped() -> None:
    assert visible('<script>alert("x")</script>') == "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


def test_control_characters_are_shown_as_escapes() -> None:
    shown = visible("a\nb\x1bc\x00\x7f")
    assert shown == (
        'a<span class="ctl" title="U+000A">\\n</span>b<span class="ctl" title="U+001B">\\x1b</span>c'
        '<span class="ctl" title="U+0000">\\x00</span><span class="ctl" title="U+007F">\\x7f</span>'
    )


def test_bidirectional_overrides_and_zero_width_characters_are_shown() -> None:
    assert 'title="U+202E"' in visible("invoice\u202etxt.exe")
    assert 'title="U+200B"' in visible("pay\u200bpal")
    assert 'title="U+2066"' in visible("\u2066x")


def test_lines_may_stay_lines_where_they_are_the_structure() -> None:
    assert visible("a\nb", lines=True) == "a\nb"
    assert 'title="U+0009"' in visible("a\tb", lines=True)


def test_the_width_of_a_shown_value_counts_its_escapes() -> None:
    assert visible_width("ab") == 2
    assert visible_width("a\nb") == 4
    assert visible_width("\u202e") == 6


def test_nothing_shows_as_nothing() -> None:
    assert visible(None) == ""


def test_a_stored_time_reads_to_the_millisecond() -> None:
    assert when("2026-11-02T14:26:19.248573Z") == "2026-11-02 14:26:19.248"


def test_entity_links_quote_their_values() -> None:
    assert entity_url("/actors", "a/b c") == "/actors/a%2Fb%20c"
    # A browser resolves "/events/.." to "/": such ids travel in the query.
    assert entity_url("/events", "..") == "/events?id=.."


def test_a_running_verification_page_refreshes_itself_and_shows_progress() -> None:
    templates = Templates(load_static())
    viewer = SimpleNamespace(
        tenant="acme", key=SimpleNamespace(id="key_1", name=None), session=SimpleNamespace(csrf="t")
    )
    running = RunState("2026-11-02T10:00:00.000000Z", 4096, 10000, None, None, None, None)
    context = {
        "viewer": viewer,
        "section": "integrity",
        "csrf_field": "csrf",
        "note": "",
        "checkpoint": None,
        "signature_problem": "none yet",
        "public_key": "",
        "key_id": None,
        "signed_at": None,
        "run": running,
    }
    html = templates.environment.get_template("integrity.html").render(context)
    assert '<meta http-equiv="refresh" content="1">' in html
    assert '<progress max="100" value="40">' in html
    assert "4,096 of 10,000 events" in html
    assert "<button" not in html.split('id="verification"')[1]
    done = templates.environment.get_template("integrity.html").render({**context, "run": None})
    assert "http-equiv" not in done
