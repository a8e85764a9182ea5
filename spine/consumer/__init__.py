"""The consumer side: Kafka into Message Log, and Message Log through the configured handlers.

Owns the jsonworkers' queue (``queue``), storing dispatched batches once (``intake``), how far
each partition is stored, which the consumer group's offsets follow (``offsets``), running due
rows through their handlers with retries and per-document order (``processor``), and the
long-running ``eventdispatcher`` and ``jsonworker`` processes (``processes``). Dependencies point
one way: processes → intake → offsets, processor → queue. May import: ``spine.settings``, ``spine.compat``
and the plain-Python modules; never ``spine.producer`` or ``spine.desk``.
"""
