"""The `wastate` command on PostgreSQL and SQLite: every command's effect and output, and that
failures are one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import wastate
from wastate.cli import cli, format_duration, parse_duration
from wastate.domain.lifecycle import MessageStatus

WA = "+919876543210"


@pytest.fixture
def run(database_url: str, tenant: str) -> Callable[..., Result]:
    """Run `wastate --database-url … --cache-url none:// --tenant <tenant> ARGS` in-process."""

    def invoke(*args: str, tenant_id: str | None = None) -> Result:
        base = ["--database-url", database_url, "--cache-url", "none://"]
        base += ["--tenant", tenant_id or tenant]
        return CliRunner().invoke(cli, [*base, *args], catch_exceptions=False)

    return invoke


def one_error_line(result: Result) -> str:
    """The error a failed command printed: one `Error:` line, last on stderr, no traceback.

    (Progress labels may precede it on stderr.)"""
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert errors == [lines[-1]], result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    return lines[-1]


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("24h", timedelta(hours=24)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("30m", timedelta(minutes=30)),
        (" 45s ", timedelta(seconds=45)),
    ],
)
def test_durations_read_as_operators_write_them(text: str, expected: timedelta) -> None:
    """`90d`, `24h`, `1d12h`… parse to the matching timedelta and print back readably."""
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "9x", "0d", "-1d", "1.5h"])
def test_nonsense_durations_are_refused(text: str) -> None:
    """Anything but <number><unit>… (and zero) is a ValueError."""
    with pytest.raises(ValueError, match=r"duration|zero"):
        parse_duration(text)


def test_a_bad_duration_is_a_usage_error(run: Callable[..., Result]) -> None:
    """`purge --older-than 9x` exits 2 naming the option."""
    result = run("purge", "--older-than", "9x")
    assert result.exit_code == 2
    assert "--older-than" in result.stderr


# --- migrate ----------------------------------------------------------------------------------


def test_migrate_sql_prints_ddl_without_a_database() -> None:
    """`migrate --sql` for an unreachable PostgreSQL URL still prints the DDL."""
    result = CliRunner().invoke(
        cli,
        ["--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none", "migrate", "--sql"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert "CREATE TABLE conversation_mappings" in result.stdout
    assert "CREATE TABLE api_keys" in result.stdout


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    """`migrate` on an empty SQLite file brings it to head; running it again changes nothing."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = CliRunner().invoke(cli, ["--database-url", url, "migrate"], catch_exceptions=False)
    second = CliRunner().invoke(
        cli, ["--json", "--database-url", url, "migrate"], catch_exceptions=False
    )
    assert first.exit_code == second.exit_code == 0
    assert json.loads(second.stdout)["revision"] == wastate.migrations.head_revision()
    with wastate.connect(url, "none://") as store:
        store.require_current_schema()


def test_migrate_on_postgresql(make_postgres_database: Callable[[], str]) -> None:
    """`migrate` brings a fresh PostgreSQL database to head."""
    url = make_postgres_database()
    result = CliRunner().invoke(cli, ["--database-url", url, "migrate"], catch_exceptions=False)
    assert result.exit_code == 0
    with wastate.connect(url, "none://") as store:
        store.require_current_schema()


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    """A database error is one clear line on stderr, no traceback."""
    result = CliRunner().invoke(
        cli,
        ["--database-url", "postgresql+psycopg://postgres@127.0.0.1:1/none", "migrate"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: database error:")


def test_a_malformed_setting_is_one_line_naming_the_variable() -> None:
    """A bad URL is a configuration error naming WASTATE_DATABASE_URL."""
    result = CliRunner().invoke(
        cli, ["--database-url", "::not a url::", "stats"], catch_exceptions=False
    )
    assert "WASTATE_DATABASE_URL" in one_error_line(result)


def test_serve_refuses_an_unmigrated_postgresql_database(
    make_postgres_database: Callable[[], str],
) -> None:
    """`serve` against an empty PostgreSQL database stops with one line telling to migrate."""
    url = make_postgres_database()
    result = CliRunner().invoke(
        cli, ["--database-url", url, "serve", "--port", "0"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "wastate migrate" in one_error_line(result)


def test_the_console_script_runs_and_fails_cleanly() -> None:
    """The installed `wastate` entry point answers --help, and an error has no traceback."""
    exe = Path(sys.executable).with_name("wastate")
    ok = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    bad = subprocess.run(
        [exe, "--database-url", "postgresql+psycopg://postgres@127.0.0.1:1/none", "stats"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0
    assert "purge" in ok.stdout
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# --- mapping maintenance ----------------------------------------------------------------------


@contextlib.contextmanager
def unit_of_work(
    database_url: str, tenant: str, moment: datetime | None = None
) -> Iterator[wastate.UnitOfWork]:
    """A unit of work on its own store, whose clock reads `moment` (default: now)."""
    clock = (lambda: moment) if moment is not None else (lambda: datetime.now(UTC))
    with (
        wastate.connect(database_url, "none://", clock=clock) as store,
        store.unit_of_work(tenant) as uow,
    ):
        yield uow


def test_expire_ends_idle_conversations_only(
    run: Callable[..., Result], database_url: str, tenant: str
) -> None:
    """`expire --idle 24h` expires a mapping idle for two days and keeps a fresh one."""
    now = datetime.now(UTC)
    with unit_of_work(database_url, tenant, now - timedelta(days=2)) as uow:
        idle = uow.mappings.get_or_create(WA)
    with unit_of_work(database_url, tenant) as uow:
        fresh = uow.mappings.get_or_create("+14155550100")
    result = run("--json", "expire", "--idle", "24h")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["expired"] == 1
    with unit_of_work(database_url, tenant) as uow:
        assert uow.mappings.by_conversation(idle.conversation_id).status == "expired"
        assert uow.mappings.by_conversation(fresh.conversation_id).status == "active"


def test_purge_dry_run_counts_and_changes_nothing_then_purge_deletes(
    run: Callable[..., Result], database_url: str, tenant: str
) -> None:
    """`purge --older-than 90d --dry-run` reports the old closed mapping; `purge` removes it."""
    long_ago = datetime.now(UTC) - timedelta(days=100)
    with unit_of_work(database_url, tenant, long_ago) as uow:
        closed = uow.mappings.get_or_create(WA)
        uow.mappings.close(WA)
    with unit_of_work(database_url, tenant) as uow:
        uow.mappings.get_or_create("+14155550100")
        uow.mappings.close("+14155550100")  # closed today: too young to purge

    dry = run("--json", "purge", "--older-than", "90d", "--dry-run")
    assert dry.exit_code == 0
    assert json.loads(dry.stdout)["mappings"] == 1
    with unit_of_work(database_url, tenant) as uow:
        assert uow.mappings.by_conversation(closed.conversation_id) is not None

    real = run("--json", "purge", "--older-than", "90d")
    assert json.loads(real.stdout)["mappings"] == 1
    assert json.loads(real.stdout)["dryRun"] is False
    with unit_of_work(database_url, tenant) as uow:
        assert uow.mappings.by_conversation(closed.conversation_id) is None


def test_purge_touches_only_its_tenant(
    run: Callable[..., Result], database_url: str, tenant: str
) -> None:
    """Another tenant's old closed mapping survives this tenant's purge."""
    other = f"{tenant}-other"
    long_ago = datetime.now(UTC) - timedelta(days=100)
    with unit_of_work(database_url, other, long_ago) as uow:
        theirs = uow.mappings.get_or_create(WA)
        uow.mappings.close(WA)
    assert run("purge", "--older-than", "90d").exit_code == 0
    with unit_of_work(database_url, other) as uow:
        assert uow.mappings.by_conversation(theirs.conversation_id) is not None


# --- API keys ---------------------------------------------------------------------------------


def test_apikey_create_list_revoke(run: Callable[..., Result], tenant: str) -> None:
    """A created key is listed as active (without its secret) and revoked by id."""
    created = run("--json", "apikey", "create", "--label", "crm")
    token = json.loads(created.stdout)["token"]
    key_id = json.loads(created.stdout)["keyId"]
    assert token.startswith(f"wsk_{tenant}_{key_id}_")
    listed = json.loads(run("--json", "apikey", "list").stdout)
    assert [(k["keyId"], k["label"], k["revokedAt"]) for k in listed] == [(key_id, "crm", None)]
    assert token not in run("apikey", "list").stdout
    assert run("apikey", "revoke", key_id).exit_code == 0
    assert json.loads(run("--json", "apikey", "list").stdout)[0]["revokedAt"] is not None


def test_revoking_an_unknown_key_fails_in_one_line(run: Callable[..., Result]) -> None:
    """`apikey revoke nope` exits 1 saying the tenant has no such key."""
    assert "no API key" in one_error_line(run("apikey", "revoke", "0123456789abcdef"))


# --- seed-004 commands through StateManager -----------------------------------------------------


@pytest.fixture
def manager(database_url: str, tenant: str, tmp_path: Path) -> Any:
    """A StateManager on the test database for this test's tenant and the default client."""
    with wastate.StateManager(
        database_url, "none://", tenant_id=tenant, backup_dir=tmp_path
    ) as manager:
        yield manager


def test_approve_and_reject_move_pending_messages(run: Callable[..., Result], manager: Any) -> None:
    """`approve` and `reject` move pending messages; statistics count them."""
    manager.add_message(
        {"id": "m1", "from": "1@c.us", "body": "hi"}, MessageStatus.PENDING_APPROVAL
    )
    manager.add_message(
        {"id": "m2", "from": "2@c.us", "body": "yo"}, MessageStatus.PENDING_APPROVAL
    )
    assert run("approve", "m1").exit_code == 0
    assert run("reject", "m2", "--reason", "spam").exit_code == 0
    assert [m["id"] for m in manager.get_messages(MessageStatus.APPROVED)] == ["m1"]
    assert [m["id"] for m in manager.get_messages(MessageStatus.REJECTED)] == ["m2"]
    stats = json.loads(run("--json", "stats").stdout)
    assert stats["total_approved"] == 1
    assert stats["total_rejected"] == 1
    assert manager.get_message_history("m2")[-1]["reason"] == "spam"
    assert manager.get_message_history("m1")[-1]["reason"] is None


def test_approving_a_message_that_is_not_pending_fails_cleanly(
    run: Callable[..., Result], manager: Any
) -> None:
    """Approving twice: the second is one error line and exit 1."""
    manager.add_message({"id": "m1", "body": "hi"}, MessageStatus.PENDING_APPROVAL)
    assert run("approve", "m1").exit_code == 0
    assert "not pending approval" in one_error_line(run("approve", "m1"))


def test_messages_list_by_status(run: Callable[..., Result], manager: Any) -> None:
    """`messages list --status incoming --limit 2` lists the newest two."""
    for n in range(3):
        manager.add_message({"id": f"m{n}", "body": f"b{n}"}, MessageStatus.INCOMING)
    listed = json.loads(
        run("--json", "messages", "list", "--status", "incoming", "--limit", "2").stdout
    )
    assert [m["id"] for m in listed] == ["m1", "m2"]
    assert "m2" in run("messages", "list", "--status", "incoming").stdout


def test_session_show_and_invalidate(run: Callable[..., Result], manager: Any) -> None:
    """`session invalidate` makes `session show` report an invalid session needing a QR scan."""
    manager.update_session_status(authenticated=True, account_info={"name": "Ops"})
    assert json.loads(run("--json", "session", "show").stdout)["is_valid"] is True
    assert run("session", "invalidate", "--reason", "phone lost").exit_code == 0
    shown = json.loads(run("--json", "session", "show").stdout)
    assert shown["is_valid"] is False
    assert shown["requires_qr_scan"] is True


def test_export_then_import_into_another_tenant(
    run: Callable[..., Result], manager: Any, tenant: str, tmp_path: Path
) -> None:
    """`export FILE` writes the seed document; `import FILE` loads it into another tenant."""
    manager.add_message({"id": "m1", "body": "hi"}, MessageStatus.INCOMING)
    path = tmp_path / "state.json"
    assert run("export", str(path)).exit_code == 0
    assert [m["id"] for m in json.loads(path.read_text())["messages"]["incoming"]] == ["m1"]
    imported = run("--json", "import", str(path), tenant_id=f"{tenant}-copy")
    assert imported.exit_code == 0
    assert json.loads(imported.stdout)["messages"] == 1


def test_import_of_a_corrupt_file_fails_in_one_line(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    """A file that is not a state document is refused with one line."""
    path = tmp_path / "junk.json"
    path.write_text("{this is not json")
    one_error_line(run("import", str(path)))


def test_backup_writes_a_timestamped_file(run: Callable[..., Result], tmp_path: Path) -> None:
    """`backup --dir D` writes whatsapp_state_backup_<stamp>.json into D."""
    result = run("--json", "backup", "--dir", str(tmp_path / "backups"))
    written = Path(json.loads(result.stdout)["backup"])
    assert written.parent == tmp_path / "backups"
    assert written.name.startswith("whatsapp_state_backup_")
    assert "messages" in json.loads(written.read_text())


def test_the_seed_variables_name_the_database(make_postgres_database: Callable[[], str]) -> None:
    """With only the seed's DB_* variables set, `migrate` works on that PostgreSQL database."""
    from sqlalchemy.engine import make_url

    url = make_url(make_postgres_database())
    env = {
        "WASTATE_DATABASE_URL": None,
        "DB_HOST": url.host,
        "DB_PORT": str(url.port or 5432),
        "DB_NAME": url.database,
        "DB_USER": url.username,
        "DB_PASSWORD": url.password,
    }
    result = CliRunner(env=env).invoke(cli, ["--json", "migrate"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["database"].endswith(f"/{url.database}")
    with wastate.connect(url.render_as_string(hide_password=False), "none://") as store:
        store.require_current_schema()
