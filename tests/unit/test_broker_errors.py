"""One table says what a broker error means (spine/kafka/broker_errors.py), and a stored error is
read back by its name."""

from __future__ import annotations

from confluent_kafka import KafkaError

from spine.kafka import broker_errors as b


def test_each_kind_of_error_is_classified_as_the_relay_and_dispatcher_need():
	assert b.classify(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)) == b.REFUSED
	assert b.classify(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)) == b.AUTHORIZATION
	assert b.classify(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)) == b.CLUSTER
	assert b.classify(KafkaError(KafkaError._AUTHENTICATION)) == b.LOGIN
	assert b.classify(KafkaError(KafkaError._SSL)) == b.TLS
	assert b.classify(KafkaError(KafkaError._TRANSPORT)) == b.RETRIABLE
	assert b.classify(KafkaError(KafkaError._FENCED, fatal=True)) == b.FATAL


def test_a_record_refused_for_good_is_not_retried_an_acl_refusal_is():
	assert not b.retriable(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
	assert b.retriable(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)), "held until the ACL is added"
	assert b.retriable(KafkaError(KafkaError._MSG_TIMED_OUT))


def test_a_stored_error_is_read_back_by_its_name_not_its_words():
	stored = b.describe(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied"))
	assert stored.startswith("TOPIC_AUTHORIZATION_FAILED: ")
	assert b.kind_of(stored) == b.AUTHORIZATION
	assert b.kind_of(b.describe(KafkaError(KafkaError._MSG_TIMED_OUT)) + " (T[2] has no leader)") == b.CLUSTER
	assert b.kind_of("the text of an error that says AUTHORIZATION somewhere") is None
	assert b.kind_of(None) is None
