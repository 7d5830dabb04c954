"""Administration in a session: settings, invitations, role changes, and connecting or
revoking a system.
"""

from __future__ import annotations

from trailkeeper.catalogue import (
    CONFIG_CHANGED,
    INTEGRATION_CONNECTED,
    INTEGRATION_DISCONNECTED,
    INTEGRATION_OAUTH_GRANTED,
    INTEGRATION_OAUTH_REVOKED,
    USER_INVITED,
    USER_ROLE_CHANGED,
)
from trailkeeper.demo.beats import (
    Event,
    _Act,
    _Beat,
    _Connect,
    _event,
    _Invitation,
    _Revoke,
    _RoleChange,
    _SettingChange,
)
from trailkeeper.demo.chance import _Dice
from trailkeeper.demo.people import _PLATFORM, _Person


def _act_beats(act: _Act, dice: _Dice, t: int, out: list[_Beat]) -> int:
    if isinstance(act, _Connect | _Revoke):
        connect = isinstance(act, _Connect)
        first = INTEGRATION_OAUTH_GRANTED if connect else INTEGRATION_OAUTH_REVOKED
        then = INTEGRATION_CONNECTED if connect else INTEGRATION_DISCONNECTED
        out.append((t, first, "success", act, act.connection.provider))
        t += dice.pause(1, 15)
        out.append((t, then, "success", act, act.connection.provider))
    elif isinstance(act, _SettingChange):
        out.append((t, CONFIG_CHANGED, "success", act, None))
    elif isinstance(act, _Invitation):
        out.append((t, USER_INVITED, "success", act, None))
    else:
        out.append((t, USER_ROLE_CHANGED, "success", act, None))
    return t


def _shown(value: str | int | bool | tuple[str, ...]) -> str | int | bool | list[str]:
    return list(value) if isinstance(value, tuple) else value


def _act_event(at: int, action: str, act: _Act, admin: _Person, context: dict[str, str]) -> Event:
    actor, who = admin.actor(), admin.name
    parts: Event = {"context": context}
    if isinstance(act, _SettingChange):
        # Secret values arrive masked (their last four characters): never recorded in clear.
        parts["targets"] = [{"type": "setting", "id": act.setting}]
        parts["metadata"] = {
            "setting": act.setting,
            "before": _shown(act.before),
            "after": _shown(act.after),
            "redacted": act.secret,
        }
        return _event(at, action, "success", actor, f"{who} changed {act.setting}", parts)
    if isinstance(act, _Invitation):
        invitee = act.invitee
        parts["targets"] = [invitee.target()]
        parts["metadata"] = {"role": invitee.role, "email": invitee.email}
        return _event(at, action, "success", actor, f"{who} invited {invitee.email} as {invitee.role}", parts)
    if isinstance(act, _RoleChange):
        parts["targets"] = [act.person.target()]
        parts["metadata"] = {"before": act.before, "after": act.after}
        said = f"{who} changed the role of {act.person.name} from {act.before} to {act.after}"
        return _event(at, action, "success", actor, said, parts)
    connection = act.connection
    title = connection.title
    parts |= {"targets": [connection.target()], "integration": connection.integration()}
    if action == INTEGRATION_OAUTH_GRANTED:
        said = f"{who} granted OAuth access to {title}"
        parts["metadata"] = {"scopes": list(connection.scopes)}
    elif action == INTEGRATION_CONNECTED:
        said = f"{who} connected {title}"
    elif action == INTEGRATION_OAUTH_REVOKED:
        said = f"{who} revoked the OAuth grant of {title}"
        parts["metadata"] = {"reason": act.reason if isinstance(act, _Revoke) else ""}
    else:  # INTEGRATION_DISCONNECTED after the revocation: the platform closes the connection
        actor = _PLATFORM.actor()
        said = f"{title} disconnected: its OAuth grant was revoked"
        parts["context"] = {"request_id": context["request_id"]}
        parts["metadata"] = {"reason": "oauth_grant_revoked"}
    return _event(at, action, "success", actor, said, parts)
