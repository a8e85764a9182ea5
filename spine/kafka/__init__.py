"""Everything that talks to Kafka, in plain Python (confluent-kafka, rq, redis; never Frappe):
publishing with broker confirmation, the dispatcher's poll → hand-over → commit-what-is-stored
loop, the RQ JSON hand-over and how it tells a vanished job, the rule that moves a partition's
stored position (``stored``), topic checks, consumer lag, and a throwaway local broker for development.

May import ``spine.config``, ``spine.envelope`` and ``spine.errors`` only.
"""
