"""Settings: WASTATE_* variables, the seed's DB_*/REDIS_* fallbacks, errors naming the variable."""

from __future__ import annotations

import pytest

from wastate.errors import ConfigurationError
from wastate.settings import DEFAULT_CACHE_URL, DEFAULT_DATABASE_URL, load_settings

SEED_VARS = ["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_HOST", "REDIS_PORT"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*SEED_VARS, "WASTATE_DATABASE_URL", "WASTATE_CACHE_URL", "WASTATE_DEFAULT_TENANT"]:
        monkeypatch.delenv(name, raising=False)


def test_the_embedded_default_needs_no_configuration() -> None:
    """No variables at all: a SQLite file and the in-process cache."""
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./wastate.db"
    assert settings.cache_url == DEFAULT_CACHE_URL == "memory://"
    assert settings.mapping_ttl_seconds == 3600
    assert settings.default_tenant is None


def test_the_seed_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """DB_* and REDIS_* build the URLs when WASTATE_* are unset (password escaped)."""
    for name, value in {
        "DB_HOST": "db.internal",
        "DB_PORT": "6543",
        "DB_NAME": "waba_mvp",
        "DB_USER": "svc",
        "DB_PASSWORD": "p@ss:word",
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (
        settings.database_url == "postgresql+psycopg://svc:p%40ss%3Aword@db.internal:6543/waba_mvp"
    )
    assert settings.cache_url == "redis://cache.internal:6380/0"


def test_wastate_variables_win_over_the_seed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit WASTATE_DATABASE_URL is used even when DB_HOST is set."""
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("WASTATE_DATABASE_URL", "sqlite:///explicit.db")
    assert load_settings().database_url == "sqlite:///explicit.db"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """connect(database_url=…) overrides WASTATE_DATABASE_URL."""
    monkeypatch.setenv("WASTATE_DATABASE_URL", "sqlite:///env.db")
    assert load_settings(database_url="sqlite:///arg.db").database_url == "sqlite:///arg.db"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WASTATE_DATABASE_URL", "not a url"),
        ("WASTATE_CACHE_URL", "localhost:6379"),
        ("WASTATE_MAPPING_TTL_SECONDS", "0"),
        ("WASTATE_MAPPING_TTL_SECONDS", "soon"),
    ],
)
def test_a_bad_value_fails_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A malformed setting raises ConfigurationError whose message names the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()


@pytest.mark.parametrize("value", ["bad tenant!", "-leading-dash", "x" * 65])
def test_the_http_settings_rules_hold_for_the_environment_and_a_hand_built_config(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """`HttpConfig` is a view of `Settings`' HTTP part: one rule for `WASTATE_DEFAULT_TENANT`,
    whether it comes from the environment or an embedder builds the config by hand."""
    from wastate.http import HttpConfig

    with pytest.raises(ConfigurationError, match="WASTATE_DEFAULT_TENANT"):
        HttpConfig(default_tenant=value)
    monkeypatch.setenv("WASTATE_DEFAULT_TENANT", value)
    with pytest.raises(ConfigurationError, match="WASTATE_DEFAULT_TENANT"):
        load_settings()
    with pytest.raises(ConfigurationError, match="WASTATE_API_KEY_CACHE_SECONDS"):
        HttpConfig(api_key_cache_seconds=-1)
