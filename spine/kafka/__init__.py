"""Everything that talks to Kafka, in plain Python (confluent-kafka, rq, redis; never Frappe):
publishing with broker confirmation, the dispatcher's poll → hand-over → commit loop, the
RQ JSON hand-over, topic checks, consumer lag, and a throwaway local broker for development.

May import ``spine.config``, ``spine.envelope`` and ``spine.errors`` only.
"""
