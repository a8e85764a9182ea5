import uuid

import pytest

from spine.kafka.admin import check, create_topics, existing_topic
from tests.brokers import KIND


def test_check_reports_missing_topics_and_create_makes_them(kafka_bootstrap):
	conf = {"bootstrap.servers": kafka_bootstrap}
	missing = f"admin-{uuid.uuid4().hex[:8]}"
	report = check(conf, [missing])
	assert report["ok"] and report["brokers"] >= 1 and report["error"] is None
	assert report["topics"] == [{"topic": missing, "exists": False, "partitions": None}]
	assert create_topics(conf, [missing], partitions=2) == {missing: None}
	assert create_topics(conf, [missing]) == {missing: None}, "an existing topic is not an error"
	assert check(conf, [missing])["topics"] == [{"topic": missing, "exists": True, "partitions": 2}]


def test_check_never_raises_when_the_broker_is_down():
	report = check({"bootstrap.servers": "127.0.0.1:1"}, ["a"], timeout=2)
	assert report["ok"] is False and "did not answer" in report["error"]
	assert report["topics"] == [{"topic": "a", "exists": None, "partitions": None}]


@pytest.mark.skipif(KIND == "noida", reason="the local development broker keeps no topic configuration")
def test_an_existing_topic_is_read_back_as_it_is(kafka_bootstrap):
	"""What Spine logs when it may not create its own topic: whether the topic the operator made has
	the configuration it needs, read back from the broker, not assumed."""
	conf = {"bootstrap.servers": kafka_bootstrap}
	compacted, plain, missing = (f"admin-{w}-{uuid.uuid4().hex[:6]}" for w in ("compact", "plain", "none"))
	assert create_topics(conf, [compacted], config={"cleanup.policy": "compact"}) == {compacted: None}
	assert create_topics(conf, [plain]) == {plain: None}
	wanted = {"cleanup.policy": "compact"}
	found = existing_topic(conf, compacted, wanted)
	assert found.matches is True and "cleanup.policy=compact, as Spine needs" in found.text
	found = existing_topic(conf, plain, wanted)
	assert (
		found.matches is False and "cleanup.policy=delete; Spine needs cleanup.policy=compact" in found.text
	)
	assert existing_topic(conf, missing, wanted) is None
	assert existing_topic({"bootstrap.servers": "127.0.0.1:1"}, compacted, wanted, timeout=2) is None
