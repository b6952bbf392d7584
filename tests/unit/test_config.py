"""The settings model and the README's configuration table generated from it."""

import pytest
from pydantic import ValidationError

from devstack.config_docs import README, readme_with_table
from latchkey.config import KafkaAuth, Settings, StoreKind


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
    with pytest.raises(ValidationError, match="issuer"):
        Settings(issuer=issuer)


def test_unknown_access_token_alg_is_refused():
    with pytest.raises(ValidationError, match="ES256 or RS256"):
        Settings(access_token_alg="HS256")


def test_every_setting_is_described():
    assert all(field.description for field in Settings.model_fields.values())


def test_readme_configuration_table_matches_the_model():
    text = README.read_text(encoding="utf-8")
    assert readme_with_table(text) == text, "run `make config-table` to regenerate README's table"
