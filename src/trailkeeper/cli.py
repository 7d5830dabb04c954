"""The ``trailkeeper`` command (CONTRACT section 6).

Exit codes: 0 success; 1 a finding (tampering, or no match with ``--fail-empty``); 2 bad
usage or bad input, always as one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trailkeeper.auditlog import AuditLog
from trailkeeper.errors import InvalidArgument, InvalidEvent, TrailkeeperError
from trailkeeper.events import MAX_BATCH
from trailkeeper.store import DEFAULT_URL

app = typer.Typer(
    name="trailkeeper",
    help="A verifiable audit log: record, search, prove and verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of event bodies.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(retention_app, name="retention")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Db = Annotated[str, typer.Option("--db", envvar="TRAILKEEPER_DB", help="Storage URL.")]
Tenant = Annotated[str, typer.Option("--tenant", envvar="TRAILKEEPER_TENANT", help="Tenant name.")]


class Finding(Exception):
    """A check found something (exit 1)."""


def _open(db: str) -> AuditLog:
    return AuditLog.open(db)


def visible(text: str) -> str:
    """A string with its control characters escaped, for a terminal (CONTRACT section 2)."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


# -- serve and demo --------------------------------------------------------------------------------
@app.command()
def serve(
    db: Db = DEFAULT_URL,
    host: Annotated[str, typer.Option("--host", envvar="TRAILKEEPER_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="TRAILKEEPER_PORT")] = 8600,
    demo: Annotated[
        bool, typer.Option("--demo", envvar="TRAILKEEPER_DEMO", help="Load the demo tenant first.")
    ] = False,
) -> None:
    """Serve the HTTP API and the web console."""
    from trailkeeper.api.server import serve as run_server

    run_server(db, host=host, port=port, demo=demo, print_fn=out.print)


@app.command()
def demo(
    db: Db = DEFAULT_URL,
    events: Annotated[
        int,
        typer.Option(
            "--events", envvar="TRAILKEEPER_EVENTS", min=500, help="How many events (at least 500)."
        ),
    ] = 5000,
    seed: Annotated[int, typer.Option("--seed", envvar="TRAILKEEPER_SEED")] = 7,
) -> None:
    """Write the demo tenant: a revenue team's platform over six weeks."""
    from trailkeeper.demo import write_demo

    with _open(db) as log, _progress("demo", events) as advance:
        facts = write_demo(log, events=events, seed=seed, progress=advance)
    out.print(f"wrote {events} events to tenant {facts.tenant!r} in {db}")


# -- keys -----------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    tenant: Tenant,
    scope: Annotated[
        list[str],
        typer.Option("--scope", envvar="TRAILKEEPER_SCOPE", help="events:write, events:read or admin."),
    ],
    name: Annotated[str | None, typer.Option("--name", envvar="TRAILKEEPER_NAME")] = None,
    db: Db = DEFAULT_URL,
) -> None:
    """Create a key; its secret is printed once and only its hash is stored."""
    with _open(db) as log:
        key, secret = log.create_key(tenant, scope, name=name)
    err.print(f"key {key.id} for tenant {key.tenant} ({', '.join(key.scopes)}); store the secret now:")
    out.print(secret)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", envvar="TRAILKEEPER_TENANT")] = None,
    db: Db = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", envvar="TRAILKEEPER_JSON")] = False,
) -> None:
    """Key ids, tenants, scopes, creation and last use."""
    with _open(db) as log:
        keys = log.keys(tenant)
    if as_json:
        for key in keys:
            out.print(json.dumps(key.to_json()), markup=False)
        return
    table = Table("id", "tenant", "scopes", "name", "created", "last used", "revoked")
    for key in keys:
        row = (
            key.id,
            key.tenant,
            " ".join(key.scopes),
            key.name,
            key.created_at,
            key.last_used_at,
            key.revoked_at,
        )
        table.add_row(*(Text(visible(v or "")) for v in row))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: Db = DEFAULT_URL) -> None:
    """Revoke a key; it stops working at once."""
    with _open(db) as log:
        key = log.revoke_key(key_id)
    out.print(f"revoked {key.id} of tenant {key.tenant}")


# -- record, search, tail ---------------------------------------------------------------------------
def _events_from(argument: str | None) -> Iterator[list[Any]]:
    """Batches of events from a JSON argument, or NDJSON on stdin (argument '-' or none)."""
    if argument is not None and argument != "-":
        try:
            value = json.loads(argument)
        except json.JSONDecodeError as exc:
            raise InvalidArgument("event", f"is not JSON: {exc.msg} at position {exc.pos}") from None
        if isinstance(value, dict) and set(value) == {"events"}:
            value = value["events"]
        events = value if isinstance(value, list) else [value]
        for start in range(0, max(len(events), 1), MAX_BATCH):
            yield events[start : start + MAX_BATCH]
        return
    batch: list[Any] = []
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            batch.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidArgument("stdin", f"line {number} is not JSON: {exc.msg}") from None
        if len(batch) == MAX_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


@app.command()
def record(
    tenant: Tenant,
    event: Annotated[str | None, typer.Argument(help="An event as JSON, or '-' for NDJSON on stdin.")] = None,
    db: Db = DEFAULT_URL,
) -> None:
    """Append events: one JSON argument, or NDJSON on stdin."""
    if event is None and sys.stdin.isatty():
        raise InvalidArgument("event", "give an event as JSON, or pipe NDJSON on stdin")
    accepted = 0
    with _open(db) as log:
        for offset, batch in _batches_with_offset(_events_from(event)):
            try:
                pairs = log.append_ids(tenant, batch)
            except InvalidEvent as exc:
                for problem in exc.errors:
                    object.__setattr__(problem, "index", problem.index + offset)
                raise InvalidEvent(exc.errors) from None
            for event_id, seq in pairs:
                out.print(json.dumps({"id": event_id, "seq": seq}), markup=False)
            accepted += len(pairs)
    err.print(f"accepted {accepted} event(s)")


def _batches_with_offset(batches: Iterator[list[Any]]) -> Iterator[tuple[int, list[Any]]]:
    offset = 0
    for batch in batches:
        yield offset, batch
        offset += len(batch)


def _cell(record: dict[str, Any]) -> list[Text]:
    actor = record.get("actor", {})
    targets = ", ".join(f"{t['type']}:{t['id']}" for t in record.get("targets", ()))
    who = actor.get("name") or actor.get("id", "")
    outcome = record.get("outcome", "success")
    style = "red" if outcome == "failure" else ""
    values = [record["occurred_at"][:23] + "Z", record["category"], record["action"], who, targets]
    return [*(Text(visible(v)) for v in values), Text(outcome, style=style)]


def _print_records(records: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for rec in records:
            out.print(json.dumps(rec, ensure_ascii=False), markup=False)
        return
    table = Table("time", "category", "action", "actor", "targets", "outcome")
    for rec in records:
        table.add_row(*_cell(rec))
    out.print(table)


@app.command()
def search(
    tenant: Tenant,
    query: Annotated[str, typer.Argument(help="Search syntax, e.g. 'action:auth.* outcome:failure'.")] = "",
    since: Annotated[str | None, typer.Option("--since", envvar="TRAILKEEPER_SINCE")] = None,
    until: Annotated[str | None, typer.Option("--until", envvar="TRAILKEEPER_UNTIL")] = None,
    limit: Annotated[int, typer.Option("--limit", envvar="TRAILKEEPER_LIMIT", min=1, max=1000)] = 50,
    order: Annotated[str, typer.Option("--order", envvar="TRAILKEEPER_ORDER")] = "desc",
    as_json: Annotated[
        bool, typer.Option("--json", envvar="TRAILKEEPER_JSON", help="NDJSON of the stored records.")
    ] = False,
    fail_empty: Annotated[
        bool,
        typer.Option("--fail-empty", envvar="TRAILKEEPER_FAIL_EMPTY", help="Exit 1 when nothing matches."),
    ] = False,
    db: Db = DEFAULT_URL,
) -> None:
    """Search a tenant's events: a table, or NDJSON with --json."""
    with _open(db) as log:
        page = log.search(tenant, query, limit=limit, since=since, until=until, order=order)
    _print_records(page.events, as_json)
    if fail_empty and not page.events:
        raise Finding("no event matches")


@app.command()
def tail(
    tenant: Tenant,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", envvar="TRAILKEEPER_FOLLOW", help="Keep printing new events.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", envvar="TRAILKEEPER_LINES", min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", envvar="TRAILKEEPER_JSON")] = False,
    interval: Annotated[float, typer.Option("--interval", envvar="TRAILKEEPER_INTERVAL", min=0.05)] = 0.5,
    db: Db = DEFAULT_URL,
) -> None:
    """The newest events of a tenant, in log order; -f follows new ones."""
    with _open(db) as log:
        size = log.tree_size(tenant)
        start = max(0, size - lines)
        records = log.follow(tenant, start, lines)
        _print_records(records, as_json)
        if not follow:
            return
        next_seq = size
        try:
            while True:
                records = log.follow(tenant, next_seq)
                if records:
                    _print_records(records, as_json)
                    next_seq = records[-1]["seq"] + 1
                else:
                    time.sleep(interval)
        except KeyboardInterrupt:
            return


# -- verify and export --------------------------------------------------------------------------
@app.command()
def verify(
    tenant: Annotated[str | None, typer.Option("--tenant", envvar="TRAILKEEPER_TENANT")] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", envvar="TRAILKEEPER_BUNDLE", help="Check an exported bundle offline."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", envvar="TRAILKEEPER_JSON")] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", envvar="TRAILKEEPER_JOBS", min=1, help="Processes (default: CPUs)."),
    ] = None,
    db: Db = DEFAULT_URL,
) -> None:
    """Recompute every leaf and root and check every checkpoint."""
    if bundle is not None:
        from trailkeeper.bundle import verify_bundle

        reports = [verify_bundle(bundle)]
    else:
        with _open(db) as log:
            tenants = [tenant] if tenant else log.store.tenants()
            reports = []
            for name in tenants:
                with _progress(f"verify {name}", log.tree_size(name)) as advance:
                    reports.append(log.verify(name, progress=lambda done, _total: advance(done), jobs=jobs))
    bad = [r for r in reports if not r.intact]
    for report in reports:
        if as_json:
            out.print(json.dumps(report.to_json()), markup=False)
        elif report.intact:
            out.print(
                f"{report.tenant}: intact ({report.leaves_checked} leaves, "
                f"{report.checkpoints_checked} checkpoints)"
            )
    if bad:
        first = bad[0]
        raise Finding(f"{first.tenant}: {first.problem} at seq {first.first_bad_seq}: {first.message}")


@app.command()
def export(
    tenant: Tenant,
    query: Annotated[str, typer.Argument(help="Search syntax selecting what to export.")] = "",
    format: Annotated[
        str, typer.Option("--format", envvar="TRAILKEEPER_FORMAT", help="ndjson, csv, ocsf, cef or syslog.")
    ] = "ndjson",
    out_file: Annotated[
        Path | None, typer.Option("--out", envvar="TRAILKEEPER_OUT", help="File to write (default: stdout).")
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", envvar="TRAILKEEPER_BUNDLE", help="Write a verifiable bundle here."),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", envvar="TRAILKEEPER_SINCE")] = None,
    until: Annotated[str | None, typer.Option("--until", envvar="TRAILKEEPER_UNTIL")] = None,
    db: Db = DEFAULT_URL,
) -> None:
    """Export the matching events, or a bundle that proves them."""
    from trailkeeper.exporters import export_lines

    with _open(db) as log:
        query_filter = log.filter(query, since=since, until=until)
        if bundle is not None:
            from trailkeeper.bundle import write_bundle

            info = write_bundle(log, tenant, bundle, None if query_filter.is_empty else query_filter)
            kind = "a subset with inclusion proofs" if info.subset else "the whole log"
            err.print(
                f"bundle of {info.tenant} ({kind}): {info.records} records, {info.purged} purged, "
                f"checkpoint at tree size {info.tree_size}, in {bundle}",
                markup=False,
            )
            return
        records = log.iter_search(tenant, query_filter, order="asc")
        lines = export_lines(format, records)
        if out_file is None:
            for line in lines:
                sys.stdout.write(line)
        else:
            with out_file.open("w", encoding="utf-8", newline="") as handle:
                handle.writelines(lines)


# -- retention ------------------------------------------------------------------------------
@retention_app.command("apply")
def retention_apply(
    archive_dir: Annotated[Path, typer.Option("--archive-dir", envvar="TRAILKEEPER_ARCHIVE_DIR")] = Path(
        "trailkeeper-archive"
    ),
    db: Db = DEFAULT_URL,
) -> None:
    """Archive, then purge the bodies older than each tenant's retention."""
    from trailkeeper.retention import apply_retention

    with _open(db) as log:
        for line in apply_retention(log, archive_dir):
            out.print(line, markup=False)


@retention_app.command("set")
def retention_set(
    tenant: Tenant,
    days: Annotated[
        int | None,
        typer.Option("--days", envvar="TRAILKEEPER_DAYS", min=1, help="Keep bodies this many days."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", envvar="TRAILKEEPER_CLEAR", help="Keep bodies for ever.")
    ] = False,
    db: Db = DEFAULT_URL,
) -> None:
    """Set a tenant's retention (bodies older than that are archived, then purged)."""
    from trailkeeper.retention import set_retention

    if days is None and not clear:
        raise InvalidArgument("days", "give --days N, or --clear")
    with _open(db) as log:
        set_retention(log, tenant, None if clear else days)
    out.print(f"{tenant}: " + ("no retention" if clear else f"retention {days} days"))


@app.command()
def migrate(db: Db = DEFAULT_URL) -> None:
    """Bring the store's schema up to date (opening a store does it too)."""
    from trailkeeper.store import open_store

    store = open_store(db)
    try:
        version = store.schema_version()
    finally:
        store.close()
    out.print(f"{db}: schema version {version}")


@app.command("reference", hidden=True)
def reference_command() -> None:
    """Print the command reference in Markdown (what docs/cli.md holds)."""
    sys.stdout.write(reference())


def reference() -> str:
    """The command reference in Markdown, from the commands themselves (docs/cli.md)."""
    root = typer.main.get_command(app)
    lines = [
        "# Command reference",
        "",
        "Generated by `trailkeeper reference` from the commands themselves. Every",
        "option can also be set through the environment variable named beside it.",
        "",
    ]

    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name in subcommands:
                if not subcommands[name].hidden:
                    walk(subcommands[name], [*path, name])
            return
        lines.extend([f"## `{' '.join(path)}`", "", (command.help or "").strip(), ""])
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
        if arguments:
            lines.extend(f"- `{p.name.upper()}`: argument" for p in arguments)
        for option in options:
            names = ", ".join(f"`{n}`" for n in option.opts)
            detail = [f"env `{option.envvar}`"] if option.envvar else []
            if option.required:
                detail.append("required")
            elif option.default not in (None, False, ()) and not callable(option.default):
                detail.append(f"default `{option.default}`")
            text = f" {option.help}" if option.help else ""
            lines.append(f"- {names} ({', '.join(detail)}).{text}")
        lines.append("")

    walk(root, ["trailkeeper"])
    return "\n".join(lines).rstrip() + "\n"


# -- plumbing ---------------------------------------------------------------------------------
class _progress:
    """A progress bar on a terminal; silent otherwise."""

    def __init__(self, label: str, total: int) -> None:
        from rich.progress import Progress

        self._bar = Progress(console=err, transient=True) if err.is_terminal else None
        self._label = label
        self._total = total

    def __enter__(self) -> Any:
        if self._bar is None:
            return lambda done: None
        self._bar.start()
        task = self._bar.add_task(self._label, total=self._total)
        return lambda done: self._bar.update(task, completed=done) if self._bar else None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"trailkeeper: {visible(message)}", markup=False)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line on stderr for every expected failure."""
    try:
        result = app(args=argv, standalone_mode=False)
    except Finding as finding:
        _fail(str(finding), 1)
    except TrailkeeperError as exc:
        _fail(exc.message, 2)
    except typer.Abort:
        _fail("aborted", 130)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.TyperException as usage:
        # Usage errors (unknown option, missing argument, bad value) from the parser.
        format_message = getattr(usage, "format_message", None)
        message = format_message() if format_message else str(usage)
        _fail(" ".join(str(message).split()), 2)
    except BrokenPipeError:
        raise SystemExit(0) from None
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 2)
    if isinstance(result, int) and result:
        raise SystemExit(result)


if __name__ == "__main__":
    main()
