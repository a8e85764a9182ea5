"""The consumer side: Kafka into Message Log, and Message Log through the configured handlers.

Owns the jsonworkers' queue (``queue``), storing dispatched batches once (``intake``), how far
each partition is stored, which the consumer group's offsets follow (``offsets``), and processing:
when passes run and which rows are due (``processor``), a batch's transaction (``batch``), which
handler and its gates (``routing``), running handlers (``running``), what messages came to
(``outcomes``). The long-running commands: ``processes`` (entry points), ``process_group`` (forked
children), ``dispatchers`` and ``workers`` (their children). Dependencies point one way:
processes → dispatchers, workers → intake → offsets; processor → batch → running → outcomes, routing.
May import: ``spine.settings``, ``spine.compat`` and the plain-Python modules; never
``spine.producer`` or ``spine.desk``.
"""
