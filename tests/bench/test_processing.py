"""Processing in batch transactions on a real site: savepoints, handlers that commit or roll back
themselves, batch handlers and their bisection, and a dispatcher that finds new topics by itself."""

from __future__ import annotations

import pytest

from tests.bench.helpers import (
	Pipeline,
	as_records,
	inbound,
	produce,
	redis_cache,
	site_kafka,
	spine_message,
	unique,
	wait_for,
)

DEMO = "spine.demo"


def comments(message_id: str) -> int:
	import frappe

	return frappe.db.count("Comment", {"content": f"spine-demo {message_id}"})


def store(topic: str, envs: list) -> None:
	import frappe

	from spine.consumer import intake

	assert intake.store(as_records(topic, envs)) == len(envs)
	frappe.db.commit()


def test_a_failing_message_rolls_back_only_its_own_effects(consumer_config, frappe_site):
	"""good, bad, good in one batch transaction: the bad one's write is undone, the others commit."""
	from spine.consumer import processor

	topic = unique("savepoint")
	consumer_config(
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.add_comment"}, max_attempts=1
	)
	envs = [
		spine_message(topic, "ToDo", "SP-1")[0],
		spine_message(topic, "ToDo", "SP-2", {"fail_after_write": 1})[0],
		spine_message(topic, "ToDo", "SP-3")[0],
	]
	store(topic, envs)
	assert processor.Batch(*_settings()).run(_names(topic), 500) == 3, "one batch finishes all three"
	status = {r.message_id: r.status for r in inbound(topic)}
	assert [status[e.message_id] for e in envs] == ["Processed", "Failed", "Processed"]
	assert [comments(e.message_id) for e in envs] == [1, 0, 1]


def _settings():
	from spine.consumer import processor
	from spine.settings import config_cache

	config_cache.forget_local()
	settings = config_cache.consumer_settings()
	return settings, processor.retry_policy(settings)


def _names(topic: str) -> list[int]:
	return [r.name for r in inbound(topic)]


@pytest.mark.parametrize("handler", ["commit_then_comment", "rollback_then_comment"])
def test_a_handler_that_ends_the_transaction_itself_is_noticed(consumer_config, frappe_site, handler):
	"""Every message ends Processed with exactly one effect, none is run twice, and later messages of
	that handler are handled one per transaction."""
	from spine.consumer import processor, routing

	topic = unique("selfcommit")
	consumer_config(
		{"topic": topic, "document_type": "Note", "event_handler": f"{DEMO}.add_comment"},
		{"topic": topic, "document_type": "ToDo", "event_handler": f"{DEMO}.{handler}"},
	)
	before = spine_message(topic, "Note", "N-1")[0]  # same batch, earlier, a well-behaved handler
	rude = [spine_message(topic, "ToDo", f"R-{i}")[0] for i in range(3)]
	store(topic, [before, *rude])
	routing.SELF_COMMITTING.discard(f"{DEMO}.{handler}")
	processor.process(max_seconds=30)
	assert f"{DEMO}.{handler}" in routing.SELF_COMMITTING
	assert {r.status for r in inbound(topic)} == {"Processed"}
	assert [comments(e.message_id) for e in [before, *rude]] == [1, 1, 1, 1]


def test_batch_handler_is_called_with_lists_and_bisects_to_the_poison_message(
	consumer_config, frappe_site, reset_calls
):
	from spine.consumer import processor
	from spine.demo import CALLS_KEY

	topic = unique("batch")
	consumer_config(
		{
			"topic": topic,
			"document_type": "ToDo",
			"event_handler": f"{DEMO}.comment_batch",
			"batch_handler": 1,
		},
		max_attempts=1,
	)
	envs = [spine_message(topic, "ToDo", f"B-{i}", {"poison": int(i == 5)})[0] for i in range(8)]
	store(topic, envs)
	processor.process(max_seconds=30)
	status = {r.message_id: r.status for r in inbound(topic)}
	assert [status[e.message_id] for e in envs] == ["Processed"] * 5 + ["Failed"] + ["Processed"] * 2
	assert [comments(e.message_id) for e in envs] == [1] * 5 + [0] + [1] * 2, "failed calls were rolled back"
	batches = [c.decode().split(" ", 1)[1].split(",") for c in redis_cache().lrange(CALLS_KEY, 0, -1)]
	assert batches[0] == [e.message_id for e in envs], "first call: the whole batch, in order"
	assert batches[1] == batches[0], "a failed call is tried once more before splitting"
	assert [envs[5].message_id] in batches and len(batches) <= 2 + 2 * 3, "halved down to the poison one"


def test_batch_handler_failure_holds_back_later_messages_of_the_same_document(consumer_config, frappe_site):
	from spine.consumer import processor

	topic = unique("batchorder")
	consumer_config(
		{
			"topic": topic,
			"document_type": "ToDo",
			"event_handler": f"{DEMO}.comment_batch",
			"batch_handler": 1,
		},
		max_attempts=3,
	)
	first = spine_message(topic, "ToDo", "SAME", {"poison": 1})[0]
	second = spine_message(topic, "ToDo", "SAME")[0]
	other = spine_message(topic, "ToDo", "OTHER")[0]
	store(topic, [first, second, other])
	processor.process(max_seconds=30)
	status = {r.message_id: r.status for r in inbound(topic)}
	assert (status[first.message_id], status[second.message_id], status[other.message_id]) == (
		"Error",
		"Pending",
		"Processed",
	)
	assert comments(second.message_id) == 0


@pytest.mark.slow
def test_dispatcher_follows_a_new_topic_without_restarting(consumer_config, frappe_site, kafka_bootstrap):
	"""A config row for a topic that does not exist yet, and a row added while running: both are read
	within seconds (librdkafka alone would wait for its 5-minute metadata refresh)."""
	early, late = unique("early"), unique("late")
	consumer_config({"topic": early, "document_type": "ToDo", "event_handler": f"{DEMO}.noop"})
	with site_kafka(kafka_bootstrap, **{"group.id": unique("newtopic")}):
		pipe = Pipeline(unique("q"))
		try:
			wait_for(lambda: "following topics" in pipe.dispatcher.output(), 60, what=pipe.logs)
			create_topic_named(kafka_bootstrap, early)  # created after the dispatcher subscribed
			env, item = spine_message(early, "ToDo", "E-1")
			produce(kafka_bootstrap, early, [item])
			wait_for(lambda: inbound(early), 20, what=lambda: f"the message on {early}\n{pipe.logs()}")

			consumer_config(
				{"topic": early, "document_type": "ToDo", "event_handler": f"{DEMO}.noop"},
				{"topic": late, "document_type": "ToDo", "event_handler": f"{DEMO}.noop"},
			)
			create_topic_named(kafka_bootstrap, late)
			env, item = spine_message(late, "ToDo", "L-1")
			produce(kafka_bootstrap, late, [item])
			wait_for(lambda: inbound(late), 20, what=lambda: f"the message on {late}\n{pipe.logs()}")
		finally:
			pipe.stop()


def create_topic_named(bootstrap: str, name: str, partitions: int = 3) -> None:
	from confluent_kafka.admin import AdminClient, NewTopic

	admin = AdminClient({"bootstrap.servers": bootstrap})
	for future in admin.create_topics([NewTopic(name, partitions)]).values():
		future.result(15)
