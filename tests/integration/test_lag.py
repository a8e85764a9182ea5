from confluent_kafka import Consumer, Producer, TopicPartition

from spine.kafka.lag import group_lag
from tests.conftest import create_topic


def test_lag_counts_what_the_group_has_not_committed(kafka_bootstrap):
	topic = create_topic(kafka_bootstrap, partitions=2)
	p = Producer({"bootstrap.servers": kafka_bootstrap})
	for i in range(10):
		p.produce(topic, b"x", partition=i % 2)
	assert p.flush(10) == 0
	group = f"lag-{topic}"
	c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
	c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
	c.close()

	lags = {
		pl.partition: pl
		for pl in group_lag({"bootstrap.servers": kafka_bootstrap, "group.id": group}, [topic])
	}
	assert lags[0].committed == 4 and lags[0].end == 5 and lags[0].lag == 1
	assert lags[1].committed is None and lags[1].end == 5 and lags[1].lag == 5
	assert group_lag({"bootstrap.servers": kafka_bootstrap, "group.id": group}, []) == []
