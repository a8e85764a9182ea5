import uuid

from spine.kafka.admin import check, create_topics


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
