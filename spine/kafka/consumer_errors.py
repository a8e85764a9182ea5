"""What an error from the consumer's poll means for the dispatcher. Plain Python.

A partition's end (``_PARTITION_EOF``) is no error; a fatal error (the client stopped for good,
e.g. another process took its ``group.instance.id``) ends the dispatcher with the reason; any
other error is logged, and librdkafka retries on its own.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, Message

from spine.errors import ConsumerFatalError
from spine.kafka import broker_errors

log = logging.getLogger(__name__)


def is_error(msg: Message, name: str, conf: dict[str, Any]) -> bool:
	"""Whether ``msg`` is an error event rather than a message; raises ``ConsumerFatalError`` for a
	fatal one."""
	err = msg.error()
	if err is None:
		return False
	if broker_errors.classify(err) == broker_errors.FATAL:
		member = conf.get("group.instance.id")
		raise ConsumerFatalError(
			f"{name}: the Kafka consumer stopped for good ({err.str()})"
			+ (
				f"; another consumer of group {conf.get('group.id')} uses group.instance.id {member}: "
				"is a second eventdispatcher serving this site from this host?"
				if member
				else ""
			)
		)
	if err.code() != KafkaError._PARTITION_EOF:
		log.warning("%s: consumer error on %s [%s]: %s", name, msg.topic(), msg.partition(), err)
	return True
