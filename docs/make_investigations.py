"""Writes docs/investigations.md from real runs: run it, commit what it writes.

    .venv/bin/python docs/make_investigations.py [--out docs/investigations.md]

In a scratch directory it writes the demo tenant (``trailkeeper demo --events 20000 --seed 7``),
makes a read key, starts ``trailkeeper serve``, then runs every command the page shows, each
in ``bash`` exactly as printed, and pastes what it printed. The server listens on a free port;
the page shows the default ``http://127.0.0.1:8600``, and the one is swapped for the other in
both directions. Which run, address or time to look at next comes from the demo's facts
(:class:`trailkeeper.demo.DemoFacts`), the same ones ``tests/test_investigations.py`` checks.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from trailkeeper.demo import DemoFacts, generate

EVENTS = 20_000
SEED = 7
SHOWN_URL = "http://127.0.0.1:8600"
SHOWN_DB = "sqlite:///demo.db"
OUT = Path(__file__).with_name("investigations.md")
COMMAND_TIMEOUT = 300
AUTH = '-H "Authorization: Bearer $KEY"'


def trimmed(text: str, max_lines: int | None) -> str:
    """At most ``max_lines`` lines of output, saying how many were left out."""
    lines = text.rstrip("\n").split("\n")
    if max_lines is None or len(lines) <= max_lines:
        return "\n".join(lines)
    left_out = len(lines) - max_lines
    return "\n".join([*lines[:max_lines], f"… ({left_out} more lines, left out here)"])


@dataclass
class Session:
    """A shell session in the scratch directory: runs commands, and records them as Markdown."""

    directory: Path
    env: dict[str, str]
    url: str = SHOWN_URL
    page: list[str] = field(default_factory=list)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        actual = command.replace(SHOWN_URL, self.url)
        result = subprocess.run(  # noqa: S603 (bash, on the commands written below)
            ["bash", "-o", "pipefail", "-c", actual],  # noqa: S607 (bash from PATH, like a reader's)
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command!r} exited {result.returncode}:\n{result.stderr}")
        return result

    def show(self, command: str, *, max_lines: int | None = 40, stderr: bool = False) -> str:
        """Run a command and put it on the page with what it printed; return the output."""
        result = self.run(command)
        output = result.stdout + (result.stderr if stderr else "")
        output = output.replace(self.url, SHOWN_URL)
        self.console(command, trimmed(output, max_lines))
        return output

    def fetch_run(self, run_id: str) -> dict[str, Any]:
        """A run as the API returns it, to write prose from (the page shows the same request)."""
        response = httpx.get(
            f"{self.url}/v1/workflow-runs/{run_id}",
            headers={"Authorization": f"Bearer {self.env['KEY']}"},
            timeout=30,
        )
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        return run

    def console(self, command: str, output: str) -> None:
        self.page += ["```console", f"$ {command}", *([output] if output else []), "```", ""]

    def say(self, *paragraphs: str) -> None:
        for paragraph in paragraphs:
            self.page += [paragraph, ""]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(session: Session) -> Iterator[str]:
    """``trailkeeper serve`` on a free port until the block ends (SIGTERM, as Ctrl-C would)."""
    port = free_port()
    server_log = session.directory / "serve.log"
    with server_log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 (the console script of this environment)
            ["trailkeeper", "serve", "--port", str(port)],  # noqa: S607 (this venv's bin is first on PATH)
            cwd=session.directory,
            env=session.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"trailkeeper serve did not start:\n{server_log.read_text()}")
            time.sleep(0.1)
        session.console("trailkeeper serve &", server_log.read_text().strip().replace(url, SHOWN_URL))
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def minute_floor(stored: str, minutes: int) -> datetime:
    moment = datetime.fromisoformat(stored)
    return moment.replace(minute=moment.minute - moment.minute % minutes, second=0, microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the page ---------------------------------------------------------------------------------


def introduction(s: Session) -> None:
    s.page += [
        "# Investigations",
        "",
        "<!-- Written by docs/make_investigations.py from real runs; edit the script, not this",
        "     file. -->",
        "",
    ]
    s.say(
        "The questions an administrator of a revenue platform asks of its audit log, each "
        "answered on the demo tenant with a command of the `trailkeeper` CLI and a request to "
        "the HTTP API, with what they printed. The demo is a fictional revenue team, Larkspur, "
        "over six weeks: sign-ins through Okta and with passwords, the assistant, settings, "
        "five connected systems, and pipeline workflows run by agents (see "
        "[the event catalogue](events.md) for what each action means).",
        "Every output below is real: `docs/make_investigations.py` runs each command as shown "
        "and pastes what it printed. Long outputs are cut, and say so; `jq` picks the fields "
        "worth reading where a whole record would be noise.",
    )


def command(*lines: str) -> str:
    """A shell command written over several lines, as a reader would type it."""
    return " \\\n  ".join(lines)


def narrate(run: dict[str, Any]) -> list[str]:
    """A numbered account of a stalled-deal run, from its events: signal, read, tasks, alerts,
    meeting, end."""
    events = run["events"]

    def first(action: str) -> dict[str, Any]:
        found: dict[str, Any] = next(e for e in events if e["action"] == action)
        return found

    def at(event: dict[str, Any]) -> str:
        return str(event["occurred_at"][11:19])

    started, read = first("workflow.started"), first("integration.data.retrieved")
    proposed, meeting = first("agent.action.taken"), first("meeting.scheduled")
    ended = first("workflow.completed")
    tasks = [e for e in events if e["action"] == "crm.task.created"]
    alerts = [e for e in events if e["action"] == "alert.sent"]
    deal, signal = started["targets"][0]["name"], started["metadata"]
    titles = ", ".join(f"'{t['targets'][0]['name']}'" for t in tasks)
    task = tasks[0]["metadata"]
    sent = "; ".join(
        f"by {a['metadata']['channel']} to `{a['metadata']['destination']}` at {at(a)}" for a in alerts
    )
    slot = meeting["metadata"]
    summary = run["summary"]
    seconds = ended["metadata"]["duration_ms"] / 1000
    return [
        f"1. **Signal**, {at(started)} UTC on {started['occurred_at'][:10]}: `workflow.started`, "
        f"trigger `{started['workflow']['trigger']}`. *{deal}* ({signal['stage']}, "
        f"{signal['amount']:,}) had had no activity for {signal['days_stalled']} days; the actor "
        f"is the {started['actor']['name']}.",
        f"2. **Read**, {at(read)}: `integration.data.retrieved` from {read['integration']['provider']} "
        f"(connection `{read['integration']['connection_id']}`): {read['metadata']['record_count']} "
        f"{read['metadata']['object_type']}.",
        f"3. **Tasks**, {at(tasks[0])} to {at(tasks[-1])}: {len(tasks)} `crm.task.created` in "
        f"Salesforce, {titles}, due {task['due_date']}, for the owner `{task['owner_id']}`.",
        f"4. **Alerts**: {len(alerts)} `alert.sent`, {sent}.",
        f"5. **Meeting**: at {at(proposed)} the agent proposed times (`agent.action.taken`, tool "
        f"`{proposed['metadata']['tool']}`); at {at(meeting)} `meeting.scheduled` put "
        f"*{meeting['targets'][0]['name']}* on the calendar for {slot['starts_at'][:10]} "
        f"{slot['starts_at'][11:16]} UTC, {slot['duration_minutes']} minutes, "
        f"{slot['attendees']} attendees.",
        f"6. **End**, {at(ended)}: `workflow.completed` after {seconds:.1f} s; the summary's "
        f"outcome is `{summary['outcome']}`, with {summary['event_count']} events and "
        f"{len(summary['failures'])} failures.",
    ]


def setting_up(s: Session) -> None:
    s.page += ["## Setting up", ""]
    s.say(
        "A fresh SQLite file, the demo tenant (twenty thousand events, seed 7), a key that may "
        "only read, and the server. Every command below reads `TRAILKEEPER_DB`; every request "
        "sends the key."
    )
    s.console(f"export TRAILKEEPER_DB={SHOWN_DB}", "")
    s.show(f"trailkeeper demo --events {EVENTS} --seed {SEED}")
    created = s.run("trailkeeper keys create --tenant demo --scope events:read")
    s.env["KEY"] = created.stdout.strip()
    shown = "export KEY=$(trailkeeper keys create --tenant demo --scope events:read)"
    s.console(shown, created.stderr.strip())


def who_accessed(s: Session, facts: DemoFacts) -> None:
    ip, victim = facts.brute_force_ip, facts.brute_force_target_user
    s.page += ["## Who accessed the platform, and when", ""]
    s.say(
        "Every sign-in is an `authentication` event: SSO through the identity provider "
        "(`auth.sso.succeeded`, `auth.sso.failed`, with the protocol and `idp` in metadata), "
        "password sign-ins (`auth.login.attempted`, then `auth.login.succeeded` or "
        "`auth.login.failed`), second factors, logouts and expired sessions. First, how many "
        "of each:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            "-d group_by=action --data-urlencode 'q=category:authentication'",
        )
    )
    s.say("The latest SSO sign-ins, with who and when:")
    s.show("trailkeeper search --tenant demo 'action:auth.sso.succeeded' --limit 6")

    s.page += ["### Failed sign-ins: finding the brute-force burst", ""]
    s.say(
        "Failures per hour show whether they are spread out (people mistyping) or bunched "
        "(someone guessing). The three busiest hours:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            "-d group_by=hour --data-urlencode 'q=action:auth.login.failed'",
            "| jq -c '.counts | sort_by(-.count) | .[:3][]'",
        )
    )
    s.say("One hour stands out. Which addresses did the failures come from?")
    s.show(
        command(
            "trailkeeper export --tenant demo 'action:auth.login.failed'",
            "| jq -r .context.ip | sort | uniq -c | sort -rn | head -5",
        )
    )
    s.say(
        f"`{ip}` failed {facts.brute_force_count} times, against one account, "
        f"between {facts.brute_force_start[11:19]} and {facts.brute_force_end[11:19]} UTC on "
        f"{facts.brute_force_start[:10]}. The burst, oldest first:"
    )
    s.show(f"trailkeeper search --tenant demo 'action:auth.login.failed ip:{ip}' --order asc --limit 4")
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            f"-d group_by=actor --data-urlencode 'q=action:auth.login.failed ip:{ip}' | jq -c .",
        )
    )
    s.say(
        "What the account's owner did next (outside the attacker's address), and the setting "
        "an administrator changed that morning:"
    )
    s.show(
        command(
            f"trailkeeper search --tenant demo 'actor:{victim} -ip:{ip}'",
            f"--since {facts.brute_force_end[:19]}Z --order asc --limit 4",
        )
    )
    s.show(
        command(
            "trailkeeper search --tenant demo 'target:auth.lockout.max_failed_attempts' --json",
            "| jq -c '{occurred_at, who: .actor.name, metadata}'",
        )
    )

    s.page += ["### A sign-in from a new country", ""]
    s.say(
        "Where people sign in from is `context.location`. The rarest locations among authentication events:"
    )
    s.show(
        command(
            "trailkeeper export --tenant demo 'category:authentication'",
            "| jq -r '.context.location // empty' | sort | uniq -c | sort -n | head -3",
        )
    )
    s.say(
        f"{facts.new_country_location} appears in a single session. Its events, found over "
        "HTTP by the session's address (`ip` is a filter of its own):"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/events {AUTH} -d ip={facts.new_country_ip} -d order=asc",
            "| jq -c '.events[] | {occurred_at, action, who: .actor.name, location: .context.location, "
            "metadata}'",
        )
    )
    s.say(
        "The identity provider asked for a second factor because of the new country; the "
        "reason is searchable text:"
    )
    s.show("trailkeeper search --tenant demo '\"new_country\"'")


def workflow_runs(s: Session, facts: DemoFacts) -> None:
    run_id = facts.failed_runs[0]
    s.page += ["## What did a given workflow run do?", ""]
    s.say(
        "Every event of a run carries `workflow.run_id`. Runs that failed end with "
        "`workflow.failed`, which names the step and the error:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/events {AUTH} -d action=workflow.failed -d order=asc -d limit=4",
            "| jq -c '.events[] | {occurred_at, run: .workflow.run_id, step: .workflow.step, "
            "error: .metadata.error}'",
        )
    )
    s.say("The first of them, as `GET /v1/workflow-runs/{run_id}` tells it (the summary, then each event):")
    s.show(f"curl -s {SHOWN_URL}/v1/workflow-runs/{run_id} {AUTH} | jq .summary")
    s.show(
        command(
            f"curl -s {SHOWN_URL}/v1/workflow-runs/{run_id} {AUTH}",
            "| jq -r '.events[] | [.occurred_at, .workflow.step, .action, .outcome] | @tsv'",
        )
    )
    s.say("The same run from the command line:")
    s.show(f"trailkeeper search --tenant demo 'workflow_run:{run_id}' --order asc")


def integrations(s: Session, facts: DemoFacts) -> None:
    retrievals = "'action:integration.data.retrieved outcome:success'"
    s.page += ["## Which integrations retrieved data, from which systems?", ""]
    s.say(
        "Each read from a connected system is `integration.data.retrieved`, with the provider "
        "in `integration` and the object type and record count in metadata. Successful reads "
        "per system:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            f"-d group_by=integration --data-urlencode q={retrievals}",
            "| jq -c '.total, .counts[]'",
        )
    )
    s.say("Who read what, and how many records in all:")
    s.show(
        command(
            f"trailkeeper export --tenant demo {retrievals}",
            "| jq -r '[.actor.name, .integration.provider, .metadata.object_type] | @tsv'",
            "| sort | uniq -c | sort -rn | head -8",
        )
    )
    s.show(
        command(
            f"trailkeeper export --tenant demo {retrievals}",
            "| jq -s -c 'group_by(.integration.provider)[] | {provider: .[0].integration.provider, "
            "reads: length, records: (map(.metadata.record_count) | add)}'",
        )
    )
    provider = facts.revoked_provider
    s.page += ["### The revoked connection", ""]
    s.say(
        f"A connection's life: granted, connected, and for {provider} revoked and "
        "disconnected. Everything that happened to it, except the routine reads and token "
        "refreshes and the workflow steps:"
    )
    s.show(
        command(
            "trailkeeper search --tenant demo --order asc",
            f"'integration:{provider} -action:integration.data.retrieved "
            "-action:integration.oauth.refreshed -category:workflow'",
        )
    )
    s.say(
        "Runs that still tried to read leads from it failed until lead routing was switched "
        "to Salesforce the next day:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/events {AUTH} -d order=asc",
            "--data-urlencode 'q=action:workflow.failed \"invalid_grant\"'",
            "| jq -c '.events[] | {occurred_at, workflow: .workflow.name, error: .metadata.error}'",
        )
    )


def notifications(s: Session) -> None:
    s.page += ["## When did alerts, tasks and notifications fire?", ""]
    s.say(
        "Workflows record what they do to the outside world: `alert.sent` (Slack or email), "
        "`crm.task.created`, `meeting.scheduled`, and `agent.action.taken` for an agent's own "
        "moves. How many of each:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            "-d group_by=action --data-urlencode 'q=category:workflow' | jq -c '.counts[]'",
        )
    )
    s.say("Alerts per day, the first week:")
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            "-d group_by=day -d action=alert.sent | jq -c '.counts[:7][]'",
        )
    )
    s.say("Where the alerts went:")
    s.show(
        command(
            "trailkeeper export --tenant demo 'action:alert.sent'",
            "| jq -r '[.metadata.channel, .metadata.destination] | @tsv'",
            "| sort | uniq -c | sort -rn | head -6",
        )
    )
    s.say("The latest CRM tasks and meetings:")
    s.show("trailkeeper search --tenant demo 'action:crm.task.created' --limit 4")
    s.show(
        command(
            "trailkeeper search --tenant demo 'action:meeting.scheduled' --limit 3 --json",
            "| jq -c '{occurred_at, meeting: .targets[0].name, starts_at: .metadata.starts_at}'",
        )
    )


def between_two_times(s: Session, facts: DemoFacts) -> None:
    start = minute_floor(facts.revoked_at, 15)
    since, until = rfc3339(start), rfc3339(start + timedelta(minutes=15))
    s.page += ["## What happened between two times?", ""]
    s.say(
        "`--since` (inclusive) and `--until` (exclusive) bound `occurred_at`; so do `since` and "
        "`until` over HTTP, and `after:` and `before:` in a query. The quarter of an hour of "
        f"the revocation, {since} to {until}, by action:"
    )
    s.show(
        command(
            f"curl -s -G {SHOWN_URL}/v1/stats {AUTH}",
            f"-d group_by=action -d since={since} -d until={until} | jq -c '.total, .counts[]'",
        )
    )
    s.say(
        "And every event of it, in order: pipeline runs, the revocation and the platform "
        "closing the connection, a lead-routing run failing on it at once, people at work:"
    )
    s.show(
        command(
            f"trailkeeper search --tenant demo --since {since} --until {until}",
            "--order asc --limit 100 --json",
            "| jq -r '[.occurred_at[11:23], .action, .outcome, .actor.name] | @tsv'",
        ),
        max_lines=50,
    )


def walk_through(s: Session, facts: DemoFacts) -> None:
    run_id = facts.example_run_id
    run = f"curl -s {SHOWN_URL}/v1/workflow-runs/{run_id} {AUTH}"
    s.page += ["## Walk-through: one pipeline automation run, from signal to meeting", ""]
    s.say(
        "The stalled-deal workflow: when an opportunity has had no activity for fourteen days, "
        "the Pipeline Agent reads the deal from Salesforce, creates follow-up tasks for its "
        "owner, alerts the deal desk on Slack and the owner by email, proposes times from the "
        f"owner's calendar, and books a meeting. Run `{run_id}`, whole:"
    )
    s.show(f"{run} | jq .summary")
    s.show(
        command(
            run, "| jq -r '.events[] | [.occurred_at[11:23], .workflow.step, .action, .description] | @tsv'"
        )
    )
    s.say("Read from the run's own events, step by step:")
    s.page += [*narrate(s.fetch_run(run_id)), ""]
    s.say(
        "What each event holds that the table does not: the signal that started the run, the "
        "tasks and whose they are, each alert's channel and destination, the meeting's time."
    )
    s.show(
        command(
            run, "| jq -c '.events[] | {step: .workflow.step, integration: .integration.provider, metadata}'"
        )
    )
    s.say(
        "One event in full, as stored (its `received_at` and `leaf_hash` depend on when the "
        "demo was written, so they are left out here):"
    )
    s.show(
        command(
            run, "| jq '.events[] | select(.action == \"meeting.scheduled\") | del(.received_at, .leaf_hash)'"
        ),
        max_lines=60,
    )
    s.say("The same run from the command line:")
    s.show(f"trailkeeper search --tenant demo 'workflow_run:{run_id}' --order asc")


def proving(s: Session, facts: DemoFacts) -> None:
    run_id = facts.example_run_id
    s.page += ["## Proving it: verify the log, export a bundle", ""]
    s.say(
        "An answer is only as good as the log it came from. `trailkeeper verify` recomputes "
        "every leaf hash and tree root of the tenant and checks each signed checkpoint "
        "(exit 0 when intact, 1 naming the first bad `seq`):"
    )
    s.show("trailkeeper verify --tenant demo")
    s.say(
        "To hand the evidence of one investigation to someone else, export a bundle: the "
        "matching events with the checkpoint, the proofs that each is in the log, and the "
        "public key. It is checked offline, without the database:"
    )
    s.show(f"trailkeeper export --tenant demo --bundle run-bundle 'workflow_run:{run_id}'", stderr=True)
    s.show("ls run-bundle && trailkeeper verify --bundle run-bundle")
    s.say(
        "The latest signed checkpoint is public to any key of the tenant "
        "(its root hash changes whenever an event is added):"
    )
    s.show(f"curl -s {SHOWN_URL}/v1/checkpoint {AUTH}")
    s.say(
        "And the log keeps its own record: every read above by the key is an "
        "`audit.log.read` event of the tenant, category `system`:"
    )
    s.show(
        command(
            "trailkeeper search --tenant demo 'action:audit.log.read' --limit 3 --json",
            "| jq -c '{action, actor: .actor.id, metadata}'",
        )
    )


def write_page(out: Path) -> None:
    facts = generate(EVENTS, SEED)[1]
    with tempfile.TemporaryDirectory(prefix="investigations-") as scratch:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "TRAILKEEPER_DB": SHOWN_DB,
            "COLUMNS": "150",  # rich's tables: wide enough not to wrap
            "NO_COLOR": "1",
        }
        env.pop("KEY", None)
        session = Session(Path(scratch), env)
        introduction(session)
        setting_up(session)
        with serving(session) as url:
            session.url = url
            who_accessed(session, facts)
            workflow_runs(session, facts)
            integrations(session, facts)
            notifications(session)
            between_two_times(session, facts)
            walk_through(session, facts)
            proving(session, facts)
    out.write_text("\n".join(session.page).rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    write_page(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
