"""Scheduled (EventBridge): one step of the signing key lifecycle (see latchkey.signing)."""

from latchkey import services, signing
from latchkey.observability import logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    report = signing.rotate(services.key_store(), services.envelope(), services.settings().signing_algs,
                            services.rotation_policy())
    for name in ("created", "activated", "retired", "removed"):
        metrics.add_metric(name=f"Keys{name.capitalize()}", unit="Count", value=len(getattr(report, name)))
    # Nested: the report's "created" would collide with logging.LogRecord.created (KeyError).
    logger.info("key rotation step", extra={"rotation": vars(report)})
    return vars(report)
