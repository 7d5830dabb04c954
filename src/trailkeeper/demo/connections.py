"""The connected systems: their providers, OAuth scopes and the object types a sync reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Connection:
    provider: str
    id: str
    title: str
    scopes: tuple[str, ...]
    objects: tuple[str, ...]  # object types a sync reads

    def integration(self) -> dict[str, str]:
        return {"provider": self.provider, "connection_id": self.id}

    def target(self) -> dict[str, str]:
        return {"type": "connection", "id": self.id, "name": self.title}


# provider, title, OAuth scopes, object types
_PROVIDERS = (
    ("salesforce", "Salesforce", ("api", "refresh_token"),
     ("Opportunity", "Account", "Contact", "Task", "Lead")),
    ("hubspot", "HubSpot", ("crm.objects.contacts.read", "crm.objects.deals.read", "oauth"),
     ("Contact", "Company", "Deal")),
    ("slack", "Slack", ("chat:write", "channels:read", "users:read"), ("Channel", "User")),
    ("gmail", "Gmail", ("gmail.readonly", "gmail.send"), ("Message", "Thread")),
    ("google_calendar", "Google Calendar", ("calendar.events",), ("Event", "FreeBusy")),
)  # fmt: skip
_REVOKED_PROVIDER = "hubspot"
_TITLES = {provider: title for provider, title, _, _ in _PROVIDERS}
