"""The command line of CONTRACT section 6: what it prints and how it exits."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trailkeeper.cli import main, reference

LOGIN = json.dumps(
    {
        "category": "authentication",
        "action": "auth.login.failed",
        "outcome": "failure",
        "actor": {"type": "user", "id": "u_42", "name": "Jane"},
        "context": {"ip": "203.0.113.9"},
    }
)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TRAILKEEPER_DB", url)
    monkeypatch.setenv("COLUMNS", "200")
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdin = sys.__stdin__
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_record_an_argument_then_find_it(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "record", "--tenant", "acme", LOGIN)
    assert code == 0
    assert json.loads(out)["seq"] == 0
    code, out, _ = run(capsys, "search", "--tenant", "acme", "--json", "action:auth.* outcome:failure")
    assert code == 0
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["actor"]["id"] == "u_42"


def test_record_ndjson_from_stdin(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines = "\n".join([LOGIN] * 2500) + "\n"
    code, out, err = run(capsys, "record", "--tenant", "acme", "-", stdin=lines)
    assert code == 0
    assert len(out.splitlines()) == 2500
    assert "accepted 2500" in err


def test_a_bad_event_is_one_line_and_exit_2_and_stores_nothing(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.dumps(
        {"category": "authentication", "action": "auth.login", "actor": {"type": "robot", "id": "r"}}
    )
    code, _, err = run(capsys, "record", "--tenant", "acme", "-", stdin=LOGIN + "\n" + bad + "\n")
    assert code == 2
    assert err.count("\n") == 1
    assert "events[1].actor.type" in err
    code, out, _ = run(capsys, "search", "--tenant", "acme", "--json")
    assert out == ""


def test_a_bad_query_names_the_position(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", "--tenant", "acme", "outcome:failure colour:red")
    assert code == 2
    assert "position 16" in err
    assert err.count("\n") == 1


def test_usage_errors_are_one_line_and_exit_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["search"], ["search", "--tenant", "acme", "--limit", "0"], ["search", "--bogus"], ["nope"]):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.count("\n") == 1, err
        assert "Traceback" not in err


def test_fail_empty_exits_1(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", "--tenant", "acme", "--fail-empty", "actor:nobody")
    assert code == 1
    assert "no event matches" in err


def test_table_shows_control_characters_and_markup_as_text(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {
        "category": "user_activity",
        "action": "assistant.query.submitted",
        "actor": {"type": "user", "id": "u", "name": "[bold red]Eve[/]\x1b[2J"},
    }
    run(capsys, "record", "--tenant", "acme", json.dumps(event))
    code, out, _ = run(capsys, "search", "--tenant", "acme")
    assert code == 0
    assert "[bold red]Eve[/]\\x1b[2J" in out
    assert "\x1b" not in out


def test_tail_prints_the_newest_in_log_order(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(5):
        event = {"category": "system", "action": f"test.n{n}", "actor": {"type": "system", "id": "t"}}
        run(capsys, "record", "--tenant", "acme", json.dumps(event))
    code, out, _ = run(capsys, "tail", "--tenant", "acme", "-n", "2", "--json")
    assert code == 0
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["test.n3", "test.n4"]


def test_keys_are_created_listed_and_revoked(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, secret, err = run(capsys, "keys", "create", "--tenant", "acme", "--scope", "events:read")
    assert code == 0
    assert secret.strip().startswith("tk_")
    key_id = err.split()[1]
    code, out, _ = run(capsys, "keys", "list", "--json")
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert listed["id"] == key_id
    assert secret.strip() not in out
    code, out, _ = run(capsys, "keys", "revoke", key_id)
    assert code == 0
    code, out, _ = run(capsys, "search", "--tenant", "acme", "--json", "action:audit.key.*")
    assert sorted(json.loads(line)["action"] for line in out.splitlines()) == [
        "audit.key.created",
        "audit.key.revoked",
    ]


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "ocsf", "cef", "syslog"])
def test_export_writes_every_match(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    run(capsys, "record", "--tenant", "acme", "-", stdin="\n".join([LOGIN] * 3) + "\n")
    out_file = tmp_path / f"out.{fmt}"
    code, _, _ = run(
        capsys, "export", "--tenant", "acme", "--format", fmt, "--out", str(out_file), "actor:u_42"
    )
    assert code == 0
    lines = out_file.read_text().splitlines()
    assert len(lines) == (4 if fmt == "csv" else 3)


def test_export_of_an_unknown_format_is_exit_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "export", "--tenant", "acme", "--format", "xml")
    assert code == 2
    assert "format" in err


def test_verify_is_0_when_intact_and_1_naming_the_seq_when_not(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "record", "--tenant", "acme", "-", stdin="\n".join([LOGIN] * 20) + "\n")
    code, out, _ = run(capsys, "verify", "--tenant", "acme")
    assert code == 0
    assert "intact" in out
    conn = sqlite3.connect(tmp_path / "cli.db")
    conn.execute("UPDATE events SET body = replace(body, 'u_42', 'u_43') WHERE seq = 7")
    conn.commit()
    conn.close()
    code, _, err = run(capsys, "verify", "--tenant", "acme")
    assert code == 1
    assert "seq 7" in err


def test_no_traceback_for_an_unreachable_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trailkeeper.cli",
            "search",
            "--tenant",
            "acme",
            "--db",
            "sqlite:////proc/none/x.db",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_command_reference_is_current() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert path.read_text() == reference(), "regenerate with: trailkeeper reference > docs/cli.md"


def test_the_reference_command_prints_it_and_is_not_listed_in_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "reference")
    assert (code, out) == (0, reference())
    assert "`trailkeeper reference`" not in out.split("\n## ", 1)[1]


def test_every_command_of_the_contract_exists() -> None:
    text = reference()
    for command in (
        "serve",
        "demo",
        "keys create",
        "keys list",
        "keys revoke",
        "record",
        "search",
        "tail",
        "verify",
        "export",
        "retention apply",
    ):
        assert f"## `trailkeeper {command}`" in text
