"""The settings model and the README's configuration table generated from it."""

import pytest

from devstack.config_docs import README, readme_with_table
from latchkey.config import ConfigError, KafkaAuth, Settings, StoreKind


def test_defaults_and_environment(monkeypatch):
    monkeypatch.setenv("ISSUER", "https://id.example.org")
    monkeypatch.setenv("SIGNING_ALGS", "RS256, ES256")
    monkeypatch.setenv("STORE", "memory")
    monkeypatch.setenv("KAFKA_AUTH", "plaintext")
    settings = Settings()
    assert settings.issuer == "https://id.example.org"
    assert settings.signing_algs == ("RS256", "ES256")
    assert settings.store is StoreKind.MEMORY and settings.kafka_auth is KafkaAuth.PLAINTEXT


@pytest.mark.parametrize("issuer", ["https://a.example/", "ftp://a.example", "https://a.example?x=1",
                                    "https://a.example#f", "a.example"])
def test_issuer_must_be_a_plain_url(issuer):
    with pytest.raises(ConfigError, match="issuer"):
        Settings(issuer=issuer)


def test_unknown_access_token_alg_is_refused():
    with pytest.raises(ConfigError, match="ES256 or RS256"):
        Settings(access_token_alg="HS256")


def test_every_setting_is_described():
    assert all(description for _name, _default, description in Settings.describe())


def test_numbers_are_converted_and_bounded(monkeypatch):
    monkeypatch.setenv("ACCESS_TOKEN_TTL", "120")
    monkeypatch.setenv("upstream_timeout", "2.5")
    settings = Settings()
    assert (settings.access_token_ttl, settings.upstream_timeout) == (120, 2.5)
    monkeypatch.setenv("ACCESS_TOKEN_TTL", "0")
    with pytest.raises(ConfigError, match="access_token_ttl"):
        Settings()
    monkeypatch.setenv("ACCESS_TOKEN_TTL", "ten")
    with pytest.raises(ConfigError, match="access_token_ttl"):
        Settings()
    monkeypatch.delenv("ACCESS_TOKEN_TTL")
    with pytest.raises(ConfigError, match="refresh_token_reuse_grace"):
        Settings(refresh_token_reuse_grace=61)
    with pytest.raises(ConfigError, match="store"):
        Settings(store="postgres")


def test_keyword_arguments_win_and_replace_checks_again(monkeypatch):
    monkeypatch.setenv("NAMESPACE", "from-env")
    assert Settings(namespace="given").namespace == "given"
    settings = Settings().replace(namespace="other")
    assert settings.namespace == "other" and settings.issuer == Settings().issuer
    with pytest.raises(ConfigError, match="issuer"):
        settings.replace(issuer="https://x.example/")
    with pytest.raises(TypeError, match="unknown"):
        Settings(nonsense=1)


def test_readme_configuration_table_matches_the_model():
    text = README.read_text(encoding="utf-8")
    assert readme_with_table(text) == text, "run `make config-table` to regenerate README's table"
