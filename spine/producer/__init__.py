"""The producer side: document events into the outbox, and the outbox onto Kafka.

Owns capturing configured events in the document's own transaction (``capture``), the relay
that publishes Pending Outbound rows and records the broker's reports (``relay``), and
backfilling existing documents (``backfill``). May import: ``spine.settings``, ``spine.compat``,
and the plain-Python modules (``spine.kafka``, ``spine.config``, ``spine.envelope``, ...);
never ``spine.consumer`` or ``spine.desk``.
"""
