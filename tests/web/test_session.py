"""Signed session cookies and the sign-in form's token."""

from __future__ import annotations

import base64

from trailkeeper.web.session import SessionSigner, csrf_matches


def test_a_session_opens_with_the_secret_it_was_signed_with() -> None:
    signer = SessionSigner(b"k" * 32)
    session, cookie = signer.new_session("key_1", "acme")
    assert signer.open_session(cookie) == session
    assert SessionSigner(b"j" * 32).open_session(cookie) is None


def test_an_altered_or_absent_cookie_is_no_session() -> None:
    signer = SessionSigner(b"k" * 32)
    _, cookie = signer.new_session("key_1", "acme")
    payload, _, signature = cookie.partition(".")
    forged = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b"key_1", b"key_2")
    ).rstrip(b"=")
    assert signer.open_session(f"{forged.decode()}.{signature}") is None
    assert signer.open_session(cookie[:-1]) is None
    assert signer.open_session(None) is None
    assert signer.open_session("") is None


def test_a_sign_in_token_is_not_a_session() -> None:
    signer = SessionSigner(b"k" * 32)
    token, cookie = signer.new_sign_in()
    assert signer.sign_in_matches(cookie, token)
    assert not signer.sign_in_matches(cookie, token + "x")
    assert signer.open_session(cookie) is None
    _, session_cookie = signer.new_session("key_1", "acme")
    assert not signer.sign_in_matches(session_cookie, token)


def test_each_session_has_its_own_csrf_token() -> None:
    signer = SessionSigner(b"k" * 32)
    first, _ = signer.new_session("key_1", "acme")
    second, _ = signer.new_session("key_1", "acme")
    assert first.csrf != second.csrf
    assert csrf_matches(first, first.csrf)
    assert not csrf_matches(first, second.csrf)
    assert not csrf_matches(first, "")
