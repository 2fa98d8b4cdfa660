"""The `wastate` command on PostgreSQL and SQLite: every command's effect and output, and that
failures are one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- hostile arguments: one line, never a traceback ---------------------------------------------
#
# Every vector below is wrong on purpose, so every run must fail: exit status != 0, no traceback
# anywhere, and stderr holding exactly one `Error:` line — alone (exit 1), or after click's usage
# lines (exit 2). `--tenant` is always passed by the fixture; vectors that test the tenant pass
# their own after it (click takes the last).

_UNDECODABLE = st.integers(0xDC80, 0xDCFF).map(chr)  # how Python shows non-UTF-8 argv bytes
_PLAIN = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
NON_UTF8 = st.builds(lambda a, bad, b: a + bad + b, _PLAIN, _UNDECODABLE, _PLAIN)
HUGE = st.integers(min_value=2**63, max_value=10**40)

BAD_DURATION = st.one_of(
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.integers(min_value=36_501, max_value=10**30),
        st.sampled_from(["d", "w"]),
    ),
    st.builds(lambda n: f"{n}s", st.integers(min_value=36_501 * 86_400, max_value=10**40)),
    st.sampled_from(["", " ", "0d", "0s", "-1d", "1.5h", "1e9d", "90", "d", "1y", "１d"]),
    NON_UTF8,
)
BAD_BATCH = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=1_000_001, max_value=10**40),
    st.sampled_from(["", "x", "1.0", "1e3", "--1"]),
    NON_UTF8,
).map(str)
BAD_LIMIT = st.one_of(st.integers(max_value=0), HUGE, NON_UTF8).map(str)
BAD_ID = st.one_of(
    st.sampled_from(["", " ", "-x", ".x", "a b", "a/b", "ü", "a" * 65]),
    st.text(min_size=65, max_size=80, alphabet="abc"),
    NON_UTF8,
)
BAD_REVISION = st.one_of(
    st.text(max_size=20).filter(lambda r: r not in {"head", "heads", "base", "0001"}),
    st.sampled_from(["-1", "+2", "head-1", "head@x", "0001:0002", "bogus"]),
    NON_UTF8,
)


def _late(hour: int, offset: int) -> str:
    """A time on the first day of year 1 that is before 0001-01-01 00:00 UTC."""
    return f"0001-01-01T{hour:02d}:00:00+{offset:02d}:00"


BAD_TIME = st.one_of(
    st.builds(_late, st.integers(0, 22), st.integers(1, 23)).filter(
        lambda t: int(t[11:13]) < int(t[-5:-3])
    ),
    st.builds(lambda o: f"9999-12-31T23:30:00-{o:02d}:00", st.integers(1, 23)),
    st.sampled_from(["2026-13-01T00:00:00", "yesterday", "", "2026-02-30", "T"]),
    st.integers(),
)
TIME_FIELDS = [
    ("session", "last_validation"),
    ("session", "last_authenticated"),
    ("session", "invalidated_at"),
    ("statistics", "last_message_received"),
    ("statistics", "last_message_sent"),
]


def _with_time(field: tuple[str, str], value: object) -> bytes:
    part, key = field
    document: dict[str, Any] = {"session": {}, "messages": {}, part: {key: value}}
    return json.dumps(document).encode()


BAD_FILE = st.one_of(
    st.integers(101, 100_000).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.integers(101, 3_000).map(
        lambda depth: (
            b'{"session": {}, "messages": {"incoming": [{"id": "m", "x": '
            + b"[" * depth
            + b"]" * depth
            + b"}]}}"
        )
    ),
    st.builds(_with_time, st.sampled_from(TIME_FIELDS), BAD_TIME),
    st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b)),
    st.sampled_from([b"", b"null", b"[]", b'{"session": 1}', b"1" * 5000, b"{" * 10]),
)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


BAD_VECTORS = st.one_of(
    BAD_DURATION.map(lambda v: ["purge", "--older-than", v]),
    BAD_DURATION.map(lambda v: ["purge", "--dry-run", "--older-than", v]),
    BAD_DURATION.map(lambda v: ["expire", "--idle", v]),
    BAD_BATCH.map(lambda v: ["purge", "--older-than", "1d", "--batch-size", v]),
    BAD_BATCH.map(lambda v: ["expire", "--idle", "1d", "--batch-size", v]),
    BAD_LIMIT.map(lambda v: ["messages", "list", "--status", "sent", "--limit", v]),
    BAD_ID.map(lambda v: ["--tenant", v, "stats"]),
    BAD_ID.map(lambda v: ["--tenant", v, "purge", "--older-than", "1d"]),
    BAD_ID.map(lambda v: ["--client", v, "session", "show"]),
    NON_UTF8.map(lambda v: ["apikey", "create", "--label", v]),
    NON_UTF8.map(lambda v: ["apikey", "revoke", v]),
    NON_UTF8.map(lambda v: ["approve", v]),
    NON_UTF8.map(lambda v: ["reject", "m1", "--reason", v]),
    NON_UTF8.map(lambda v: ["session", "invalidate", "--reason", v]),
    NON_UTF8.map(lambda v: ["--database-url", v, "stats"]),
    NON_UTF8.map(lambda v: ["--cache-url", v, "stats"]),
    BAD_REVISION.map(lambda v: ["migrate", "--revision", v]),
    BAD_REVISION.map(lambda v: ["migrate", "--sql", "--revision", v]),
    BAD_FILE.map(lambda content: ["import", content]),
)


def assert_clean_failure(exit_code: int, stdout: str, stderr: str, *, argv: object = None) -> str:
    """A refused command: non-zero exit, no traceback, and one `Error:` line on stderr (after
    click's usage lines for a usage error, exit 2). Returns the error line."""
    why = f"argv {argv!r}\nstdout {stdout!r}\nstderr {stderr!r}"
    assert exit_code != 0, why
    assert "Traceback" not in stdout + stderr, why
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, why
    assert lines[-1].startswith("Error: "), why
    if exit_code == 2 and len(lines) > 1:
        assert [line.split(" ")[0] for line in lines] == ["Usage:", "Try", "Error:"], why
    else:
        assert len(lines) == 1, why
    assert "unexpected" not in lines[-1], why  # the safety net is for bugs only
    return lines[-1]


@given(vector=BAD_VECTORS)
@settings(max_examples=400)
def test_hostile_arguments_fail_in_one_line_never_a_traceback(
    vector: list[Any], database_url: str, tenant: str, tmp_path: Path
) -> None:
    """Generated bad arguments (huge, negative, empty, non-UTF-8 values, deep or out-of-range
    import files) never escape as a traceback: each is one line on stderr and a non-zero exit."""
    args = [str(part) for part in vector]
    if vector[0] == "import":
        path = tmp_path / f"bad-{uuid.uuid4().hex}.json"
        path.write_bytes(vector[1])
        args[1] = str(path)
    # A global option the vector repeats (--tenant, --database-url) overrides these: click
    # takes the last.
    base = ["--database-url", database_url, "--cache-url", "none://", "--tenant", tenant]
    result = CliRunner().invoke(cli, [*base, *args])
    # CliRunner catches what would have been a traceback: any exception but SystemExit.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert_clean_failure(result.exit_code, result.stdout, result.stderr, argv=args)


DEEP = 100_000


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["purge", "--older-than", "1000000d"], "'--older-than'"),
        (["purge", "--older-than", "99999999999999999999999d"], "'--older-than'"),
        (["expire", "--idle", "1000000d"], "'--idle'"),
        (["purge", "--older-than", "1d", "--batch-size", "99999999999999999999"], "--batch-size"),
        (["messages", "list", "--status", "sent", "--limit", str(2**64)], "'--limit'"),
        (["--tenant", "", "stats"], "'--tenant': must not be empty"),
        (["--client", "", "stats"], "'--client': must not be empty"),
        (["--tenant", "\udcff", "stats"], "'--tenant'"),
        (["apikey", "create", "--label", "\udcff"], "'--label': is not valid UTF-8"),
        (["reject", "m1", "--reason", "caf\udce9"], "'--reason': is not valid UTF-8"),
        (["approve", "\udcff"], "'MESSAGE_ID': is not valid UTF-8"),
        (["migrate", "--revision", "bogus"], "revision: 'bogus' is not a revision"),
        (["migrate", "--sql", "--revision", "head-1"], "revision: 'head-1' is not a revision"),
    ],
)
def test_each_reported_bad_argument_is_refused_naming_it(
    run: Callable[..., Result], argv: list[str], names: str
) -> None:
    """The reported traceback cases: each is one clear line naming the option or field."""
    result = run(*argv)
    assert names in assert_clean_failure(result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("[" * DEEP + "]" * DEEP, "nests deeper than 100 levels"),
        (
            json.dumps(
                {"session": {"last_validation": "0001-01-01T00:00:00+01:00"}, "messages": {}}
            ),
            "session.last_validation: is out of the representable range in UTC",
        ),
        (
            json.dumps(
                {
                    "session": {},
                    "messages": {"sent": [{"id": "m", "added_at": "9999-12-31T23:00:00-05:00"}]},
                }
            ),
            "messages.sent[0].added_at",
        ),
        ('{"session": {}, "messages": {}, "config": {"n": 1' + "0" * 5000 + "}}", "not valid JSON"),
    ],
)
def test_an_import_file_the_library_refuses_is_one_line_naming_the_field(
    run: Callable[..., Result], tmp_path: Path, content: str, names: str
) -> None:
    """A 100,000-deep file, timestamps that overflow when moved to UTC and over-long numbers
    are `InvalidInput` from `import_state`, shown as one line."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("import", str(path))
    assert result.exit_code == 1
    assert names in assert_clean_failure(result.exit_code, result.stdout, result.stderr)


WASTATE = Path(sys.executable).with_name("wastate")

# Raw bytes, as a shell passes them: non-UTF-8 arguments reach Python as lone surrogates.
SUBPROCESS_VECTORS: list[list[bytes]] = [
    [b"purge", b"--older-than", b"1000000d"],
    [b"expire", b"--idle", b"1d", b"--batch-size", b"99999999999999999999"],
    [b"--tenant", b"", b"stats"],
    [b"--tenant", b"caf\xe9", b"stats"],
    [b"apikey", b"create", b"--label", b"\xff\xfe"],
    [b"reject", b"m1", b"--reason", b"\xc3\x28"],
    [b"migrate", b"--revision", b"bogus"],
    [b"import", b"@deep"],
    [b"import", b"@time"],
]


def test_hostile_arguments_through_the_real_command(database_url: str, tmp_path: Path) -> None:
    """The installed `wastate`, given raw non-UTF-8 bytes, huge numbers, an empty tenant, a
    100,000-deep file and an out-of-range time: each exits non-zero with one line, no traceback."""
    files = {
        b"@deep": tmp_path / "deep.json",
        b"@time": tmp_path / "time.json",
    }
    files[b"@deep"].write_text("[" * DEEP + "]" * DEEP)
    files[b"@time"].write_text(
        json.dumps(
            {
                "session": {},
                "messages": {},
                "statistics": {"last_message_sent": "0001-01-01T00:00:00+09:00"},
            }
        )
    )
    for vector in SUBPROCESS_VECTORS:
        argv = [bytes(files[part]) if part in files else part for part in vector]
        done = subprocess.run(
            [
                bytes(WASTATE),
                b"--database-url",
                database_url.encode(),
                b"--cache-url",
                b"none://",
                *argv,
            ],
            capture_output=True,
            timeout=60,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        stdout, stderr = (
            stream.decode("utf-8", "replace") for stream in (done.stdout, done.stderr)
        )
        assert_clean_failure(done.returncode, stdout, stderr, argv=vector)


# --- an interrupted export leaves no temp file --------------------------------------------------

# Runs the real command in a real process whose export sends itself `signal` once it has written
# part of the temp file: the signal lands mid-export every time, not by the luck of timing.
_INTERRUPTED_EXPORT = """
import os, signal, sys, time
from wastate.state_manager import StateManager

def write(self, out, *, progress=None):
    out.write("{" + " " * 1_000_000)
    out.flush()
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(30)

StateManager._write_document = write
from wastate.cli import main
main(sys.argv[2:])
"""


def interrupted(signame: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_EXPORT, signame, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.suffix == ".tmp")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGHUP"])
@pytest.mark.parametrize("command", ["export", "backup"])
def test_a_signal_mid_export_removes_the_temp_file(
    database_url: str, tenant: str, tmp_path: Path, signame: str, command: str
) -> None:
    """SIGTERM, SIGHUP and ^C during `export`/`backup` end it with one line and the signal's
    exit status, leaving neither a temp file nor a half-written or empty backup behind."""
    out = tmp_path / "out"
    out.mkdir()
    where = [str(out / "state.json")] if command == "export" else ["--dir", str(out)]
    done = interrupted(
        signame, "--database-url", database_url, "--cache-url", "none://", "--tenant", tenant,
        command, *where,
    )  # fmt: skip
    signum = getattr(signal, signame)
    assert done.returncode == 128 + signum, done.stderr
    assert done.stderr.strip() == f"Error: interrupted by {signame}"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["export", "backup"])
def test_the_next_export_removes_what_a_killed_one_left(
    database_url: str, tenant: str, tmp_path: Path, command: str
) -> None:
    """A writer killed outright (SIGKILL) leaves its temp file; the next `export`/`backup` into
    that folder removes it — but never the temp file of a writer still at work (it holds a lock
    on it)."""
    out = tmp_path / "out"
    out.mkdir()
    where = [str(out / "state.json")] if command == "export" else ["--dir", str(out)]
    options = ["--database-url", database_url, "--cache-url", "none://", "--tenant", tenant]
    killed = interrupted("SIGKILL", *options, command, *where)
    assert killed.returncode == -signal.SIGKILL
    left = temp_files(out)
    assert len(left) == 1  # what the issue saw: a hidden temp file nobody removes
    # A live writer's temp file of the same naming pattern, locked as the writer locks it.
    target = "state.json" if command == "export" else "whatsapp_state_backup_20260101_000000.json"
    live = out / f".{target}.abcd1234.tmp"
    with live.open("w") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        done = subprocess.run(
            [WASTATE, *options, command, *where], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert temp_files(out) == [live.name]
    exported = [p for p in out.iterdir() if not p.name.startswith(".") and p.stat().st_size > 0]
    assert len(exported) == 1
    assert "messages" in json.loads(exported[0].read_text())


def test_an_unexpected_error_is_still_one_line_and_logged(
    run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The boundary's last resort: a bug (here a ZeroDivisionError) is one line saying so, and
    its traceback goes to the log, not the terminal."""

    def broken(_self: Any) -> Any:
        return 1 / 0

    monkeypatch.setattr(wastate.StateManager, "get_statistics", broken)
    with caplog.at_level("DEBUG", logger="wastate.cli"):
        result = run("stats")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "Error: unexpected ZeroDivisionError: division by zero (a wastate bug: please report it)"
    ]
    assert "Traceback" not in result.stderr
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
