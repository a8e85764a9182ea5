"""Real Apache Kafka for Spine's tests and benchmarks: KRaft brokers run from Maven Central's jars."""
