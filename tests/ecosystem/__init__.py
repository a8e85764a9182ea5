"""What the rest of a Kafka cluster runs beside Spine, for the interop tests: Apicurio Registry and
Kafka Connect (both from Maven Central, as the broker is), and a Python environment of stock clients
(confluent-kafka's Schema Registry serdes, the CloudEvents SDK) that nothing here wrote."""
