"""The relay's Kafka producer configuration: idempotence, and MSK IAM via OAUTHBEARER."""

import sys
import types

from latchkey.config import Settings
from latchkey_kafka import msk_oauth_callback, producer_config


def test_plaintext_producer_is_idempotent_with_acks_all():
    config = producer_config(Settings(kafka_bootstrap="127.0.0.1:9092", kafka_auth="plaintext",
                                      kafka_flush_timeout=2.5))
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["message.timeout.ms"] == 2500
    assert "security.protocol" not in config


def test_iam_producer_uses_sasl_ssl_oauthbearer_with_a_callback():
    config = producer_config(Settings(kafka_bootstrap="b-1.msk:9098", kafka_auth="iam"))
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    assert callable(config["oauth_cb"])


def test_msk_signer_expiry_in_milliseconds_becomes_seconds(monkeypatch):
    calls = []

    class Provider:
        @staticmethod
        def generate_auth_token(region):
            calls.append(region)
            return "signed-token", 1_800_000_000_000  # the signer answers in milliseconds

    module = types.ModuleType("aws_msk_iam_sasl_signer")
    module.MSKAuthTokenProvider = Provider
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", module)
    token, expiry = msk_oauth_callback("eu-west-1")("ignored")
    assert (token, expiry, calls) == ("signed-token", 1_800_000_000.0, ["eu-west-1"])
