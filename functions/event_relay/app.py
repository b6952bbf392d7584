"""DynamoDB Streams → Kafka: publishes committed outbox rows (see latchkey.events.relay)."""

from latchkey import services
from latchkey.events.relay import relay
from latchkey.observability import logger, metrics
from latchkey_kafka import publisher


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    cfg = services.settings()
    result = relay(event.get("Records", []), publisher(cfg), prefix=cfg.kafka_topic_prefix,
                   timeout=cfg.kafka_flush_timeout)
    metrics.add_metric(name="RelayBatchFailures", unit="Count", value=len(result["batchItemFailures"]))
    return result
