"""SQL shared by the relational stores: filters to WHERE clauses, rows from records.

Each store names its dialect (placeholder, how to match a prefix, a negation, a text term);
the shape of every query is written once here, so that SQLite and PostgreSQL answer the same
question the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trailkeeper.events import time_us as time_us  # re-exported: stores and verify read it here
from trailkeeper.query import DAY_US, HOUR_US, Filter, Term
from trailkeeper.store.base import PageQuery

# Search fields (CONTRACT section 5) to the events table's columns.
COLUMNS = {
    "category": "category",
    "action": "action",
    "actor": "actor_id",
    "actor_type": "actor_type",
    "outcome": "outcome",
    "integration": "integration",
    "workflow_run": "workflow_run",
    "ip": "ip",
}
TARGET_COLUMNS = {"target": "id", "target_type": "type"}

# Columns indexed only for their rarer values (the migrations' partial indexes): the common
# values, and the condition that names the rest, which a query must state literally for the
# planner to know the partial index holds what it seeks.
PARTIAL_INDEXES = {
    "outcome": (("success",), "e.outcome <> 'success'"),
    "actor_type": (("user", "agent"), "e.actor_type NOT IN ('user', 'agent')"),
}

GROUP_EXPRESSIONS = {
    "category": "e.category",
    "action": "e.action",
    "actor": "e.actor_id",
    "outcome": "e.outcome",
    "integration": "e.integration",
    "hour": f"e.occurred_us - (e.occurred_us % {HOUR_US})",
    "day": f"e.occurred_us - (e.occurred_us % {DAY_US})",
}


def prefix_upper_bound(prefix: str) -> str:
    """The least string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class Dialect:
    placeholder: str
    # SQL matching the free-text terms, given a placeholder for the store's text query.
    text_clause: str
    text_query: Callable[[tuple[str, ...]], Any]
    # A null-safe "is not equal".
    distinct: str


@dataclass(frozen=True)
class Source:
    """Which rows a query reads, and how.

    ``rows`` is the FROM clause: alias ``e`` holds the searchable columns and ``record``
    names the alias that holds the body and leaf hash (the same table, or one joined to
    it). ``targets`` is the table of target rows; without one, targets are read from the
    bodies: ``body_targets`` is an EXISTS over a record's targets with ``{match}`` in place
    of the condition, and ``body_target`` the expression of a target's ``{name}`` (``id`` or
    ``type``) there. ``text_clause`` replaces the dialect's; ``min_seq`` and ``below_seq``
    bound the rows' seq. This is how the SQLite store reads the part of a log its derived
    search index holds, and the few newest records it does not hold yet.
    """

    rows: str = "events e"
    record: str = "e"
    targets: str | None = "event_targets"
    body_targets: str = ""
    body_target: str = ""
    text_clause: str | None = None
    min_seq: int | None = None
    below_seq: int | None = None
    # The alias whose seq ``min_seq`` bounds: the table a short tail is found in by seq.
    seq_from: str = "e"
    # Hide the time bounds from the planner: the rows are found by seq (a short tail of the
    # log), whatever their times.
    by_seq: bool = False
    # The columns a target row and its record's row share, after the tenant: the record's
    # seq, or its whole key where ``rows`` is found by that key only.
    target_key: tuple[str, ...] = ("seq",)
    # A negated target term as NOT EXISTS, each row's targets looked up by that key, rather
    # than NOT IN a list of every match: a list too large for the server's working memory
    # is searched anew for every row (PostgreSQL: 3 s for a target type a third of a
    # million records have). A short tail, whose list holds its own targets only, keeps
    # NOT IN.
    anti_join: bool = False
    # Where set, a join that finds the record (alias ``record``) of each row a page keeps,
    # made once the page's rows are chosen (alias ``k``, with the key columns tenant,
    # occurred_us and seq): rows found from ``rows`` alone, sorted and cut at the limit,
    # look up only the records the page returns. A record not found has a NULL body.
    lookup: str | None = None


TABLE = Source()


def where(
    query_filter: Filter,
    tenant: str,
    dialect: Dialect,
    *,
    drive_by_text: bool = False,
    hide_prefixes: bool = False,
    source: Source = TABLE,
) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) and its parameters, for table alias ``e``.

    ``drive_by_text`` hides the tenant column from the planner (a unary plus), so that the
    full-text matches are the rows it starts from. ``hide_prefixes`` does the same to the
    columns of prefix terms, for a prefix that matches many rows: reading them all through
    its index and sorting them costs far more than walking the time order, where matches
    are dense.
    """
    p = dialect.placeholder
    # Purged records (bodies dropped by retention) all lie before the tenant's purge mark,
    # which the store adds to the filter as a time bound: a condition on the body itself
    # would make every count read every row.
    clauses = [f"{'+' if drive_by_text else ''}e.tenant = {p}"]
    params: list[Any] = [tenant]
    if source.min_seq is not None:
        for alias in tail_table(source):
            # Keyed by (tenant, seq): without its own tenant condition, which the planner
            # does not carry into it from ``e``, the table would be read whole for the tail.
            clauses.append(f"{alias}.tenant = {p}")
            params.append(tenant)
        clauses.append(f"{source.seq_from}.seq >= {p}")
        params.append(source.min_seq)
    if source.below_seq is not None:
        clauses.append(f"+e.seq < {p}")
        params.append(source.below_seq)
    for term in query_filter.terms:
        clause, values = _term(term, tenant, dialect, hide_prefix=hide_prefixes, source=source)
        clauses.append(clause)
        params.extend(values)
    if query_filter.text:
        text_clause = source.text_clause or dialect.text_clause
        # "{hide}" marks where a dialect's clause can hide a column from the planner: unless
        # the text drives, its matches are a filter on the rows an ordered index walks, not a
        # list to look each of them up by (SQLite would try every match against every row).
        hide = "" if drive_by_text else "+"
        clauses.append(text_clause.replace("{record}", source.record).replace("{hide}", hide).replace("?", p))
        params.append(dialect.text_query(query_filter.text))
    for time in times_of(source):
        if query_filter.after_us is not None:
            clauses.append(f"{time} >= {p}")
            params.append(query_filter.after_us)
        if query_filter.before_us is not None:
            clauses.append(f"{time} < {p}")
            params.append(query_filter.before_us)
    return " AND ".join(clauses), params


def times_of(source: Source) -> list[str]:
    """The expressions of a record's time that bounds on it are put on: its row's, and its
    tail table's (see :func:`tail_table`). The unary plus keeps the planner from reading a
    bound as a way to the rows."""
    if not source.by_seq:
        return ["e.occurred_us"]
    return ["+e.occurred_us"] + [f"+{alias}.occurred_us" for alias in tail_table(source)]


def tail_table(source: Source) -> list[str]:
    """The alias of the table a short tail is found in by seq, where it is not the rows' own
    and holds each record's tenant, time and seq too (PostgreSQL's leaves): the tenant, the
    bounds on time and a page's cursor hold there as well, so that the table is read by its
    key and a record outside them is not looked up."""
    return [source.seq_from] if source.by_seq and source.seq_from != "e" else []


def _match(column: str, term: Term, p: str) -> tuple[str, list[Any]]:
    """A term's value against one column: equal, or within the prefix's range (an empty
    prefix matches any value that is there)."""
    if not term.prefix:
        return f"{column} = {p}", [term.value]
    if not term.value:
        return f"{column} IS NOT NULL", []
    return f"{column} >= {p} AND {column} < {p}", [term.value, prefix_upper_bound(term.value)]


def _term(
    term: Term, tenant: str, dialect: Dialect, *, hide_prefix: bool = False, source: Source = TABLE
) -> tuple[str, list[Any]]:
    p = dialect.placeholder
    if term.field in TARGET_COLUMNS:
        if source.targets is None:
            column = source.body_target.replace("{name}", TARGET_COLUMNS[term.field])
            match, values = _match(column, term, p)
            exists = source.body_targets.replace("{match}", match)
            return (f"NOT {exists}" if term.negated else exists), values
        match, values = _match(f"t.{TARGET_COLUMNS[term.field]}", term, p)
        if term.negated and source.anti_join:
            same = " AND ".join(f"t.{name} = e.{name}" for name in ("tenant", *source.target_key))
            return (
                f"NOT EXISTS (SELECT 1 FROM {source.targets} t WHERE {same} AND {match})",
                values,
            )
        columns = ", ".join(f"t.{name}" for name in source.target_key)
        inner = f"SELECT {columns} FROM {source.targets} t WHERE t.tenant = {p} AND {match}"
        if source.min_seq is not None:
            # Only the targets of the rows read: those of a short tail, found by seq.
            inner += f" AND t.seq >= {p}"
            values = [*values, source.min_seq]
        keyword = "NOT IN" if term.negated else "IN"
        record_key = ", ".join(f"e.{name}" for name in source.target_key)
        if len(source.target_key) > 1:
            record_key = f"({record_key})"
        return f"{record_key} {keyword} ({inner})", [tenant, *values]
    column = f"e.{COLUMNS[term.field]}"
    if term.prefix:
        clause, values = _match(f"+{column}" if hide_prefix else column, term, p)
        if term.negated:
            clause = f"({column} IS NULL OR NOT ({clause}))"
        return f"({clause})", values
    if term.negated:
        return f"{column} {dialect.distinct} {p}", [term.value]
    partial = PARTIAL_INDEXES.get(term.field)
    if partial is not None and term.value not in partial[0]:
        return f"{column} = {p} AND {partial[1]}", [term.value]
    return f"{column} = {p}", [term.value]


def order_by(order: str, *, sort_after: bool = False, alias: str = "e") -> str:
    direction = "ASC" if order == "asc" else "DESC"
    plus = "+" if sort_after else ""
    return f"{plus}{alias}.occurred_us {direction}, {plus}{alias}.seq {direction}"


def page_sql(
    query: PageQuery,
    dialect: Dialect,
    *,
    sort_after: bool = False,
    drive_by_text: bool = False,
    hide_prefixes: bool = False,
    source: Source = TABLE,
) -> tuple[str, list[Any]]:
    """The SQL of one page.

    By default the result order is read from an index ending in (occurred_us, seq), and the
    walk stops at the limit. With ``sort_after`` the order terms carry a unary plus, which
    keeps the planner from walking an ordered index: it then starts from the most selective
    filter (a short list of targets, text matches or a narrow prefix) and sorts what it
    found, which is far cheaper when few rows match.
    """
    p = dialect.placeholder
    plus = "+" if sort_after else ""
    clause, params = where(
        query.filter,
        query.tenant,
        dialect,
        drive_by_text=drive_by_text,
        hide_prefixes=hide_prefixes,
        source=source,
    )
    if query.after is not None:
        comparison = ">" if query.order == "asc" else "<"
        clause += f" AND ({plus}e.occurred_us, {plus}e.seq) {comparison} ({p}, {p})"
        params += [query.after.occurred_us, query.after.seq]
        for alias in tail_table(source):
            clause += f" AND (+{alias}.occurred_us, +{alias}.seq) {comparison} ({p}, {p})"
            params += [query.after.occurred_us, query.after.seq]
    if query.below_seq is not None:
        # The unary plus keeps the planner from reading this bound as a reason to walk the
        # seq index: it holds for nearly every row, and the filter's own index is the one.
        clause += f" AND +e.seq < {p}"
        params.append(query.below_seq)
    record = source.record
    body = f"{record}.body, {record}.leaf_hash"
    if source.lookup is None:
        # A page reads each row's body anyway, so this costs nothing here: a body removed by
        # hand after the purge mark (which verify reports) leaves a gap, not a failed search.
        clause += f" AND {record}.body IS NOT NULL"
        columns = f"e.occurred_us, e.seq, {body}"
    else:
        columns = "e.tenant, e.occurred_us, e.seq"
    sql = (
        f"SELECT {columns} FROM {source.rows} "
        f"WHERE {clause} ORDER BY {order_by(query.order, sort_after=sort_after)} LIMIT {p}"
    )
    if source.lookup is not None:
        sql = (
            f"SELECT k.occurred_us, k.seq, {body} FROM ({sql}) k {source.lookup} "
            f"ORDER BY {order_by(query.order, alias='k')}"
        )
    return sql, [*params, query.limit]


def count_sql(
    query_filter: Filter,
    tenant: str,
    group_by: str,
    dialect: Dialect,
    sources: tuple[Source, ...] = (TABLE,),
) -> tuple[str, list[Any]]:
    """Counts by ``group_by`` of the matching rows, of every source added up."""
    expression = GROUP_EXPRESSIONS[group_by]
    parts: list[str] = []
    params: list[Any] = []
    for source in sources:
        clause, values = where(query_filter, tenant, dialect, source=source)
        parts.append(
            f"SELECT {expression} AS bucket, count(*) AS n FROM {source.rows} WHERE {clause} GROUP BY bucket"
        )
        params += values
    rows = parts[0]
    if len(parts) > 1:
        rows = f"SELECT bucket, sum(n) AS n FROM ({' UNION ALL '.join(parts)}) AS parts GROUP BY bucket"
    # Time buckets read best in time order; the other groups, largest first.
    ordering = "bucket" if group_by in ("hour", "day") else "n DESC, bucket"
    return f"{rows} ORDER BY {ordering}", params


def search_text(record: dict[str, Any]) -> str:
    """What free-text search sees of a record: its description, the names of its actor,
    targets and workflow, where it came from, and its metadata values."""
    # The writer calls this for every event it appends: one list, filled in place, with no
    # generator per object.
    parts: list[str] = []
    add = parts.append
    if "description" in record:
        add(record["description"])
    actor = record["actor"]
    for key in ("name", "email"):
        if key in actor:
            add(actor[key])
    for target in record.get("targets", ()):
        if "name" in target:
            add(target["name"])
    workflow = record.get("workflow")
    if workflow:
        for key in ("name", "trigger", "step"):
            if key in workflow:
                add(workflow[key])
    context = record.get("context")
    if context and "location" in context:
        add(context["location"])
    if "metadata" in record:
        _add_values(record["metadata"], add)
    return "\n".join(parts)


def _add_values(value: Any, add: Callable[[str], None]) -> None:
    """Every string and number in a JSON value, in order, as text."""
    if isinstance(value, str):
        add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _add_values(item, add)
    elif isinstance(value, list):
        for item in value:
            _add_values(item, add)
    elif value is not None and not isinstance(value, bool):
        add(str(value))


def index_columns(record: dict[str, Any], occurred_us: int) -> tuple[Any, ...]:
    """The searchable columns of a record, in the order of ``INDEX_COLUMN_NAMES``."""
    integration = record.get("integration")
    workflow = record.get("workflow")
    context = record.get("context")
    actor = record["actor"]
    return (
        occurred_us,
        record["category"],
        record["action"],
        record["outcome"],
        actor["type"],
        actor["id"],
        integration["provider"] if integration else None,
        workflow["run_id"] if workflow else None,
        context.get("ip") if context else None,
    )


def column_difference(seq: int, pairs: Sequence[Any], copy: str) -> str | None:
    """How a record's copy in a derived search index differs from its row: the first of
    ``INDEX_COLUMN_NAMES`` whose value differs, from ``pairs``, each column's value in the
    events table then in ``copy``, one after the other. None when none does (they can be
    equal but for what SQL's IS NOT tells apart and != does not)."""
    for offset, name in enumerate(INDEX_COLUMN_NAMES):
        table, copied = pairs[2 * offset], pairs[2 * offset + 1]
        if table != copied or type(table) is not type(copied):
            return f"column {name} of record {seq} is {table!r} in the events table and {copied!r} in {copy}"
    return None


INDEX_COLUMN_NAMES = (
    "occurred_us",
    "category",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "integration",
    "workflow_run",
    "ip",
)
