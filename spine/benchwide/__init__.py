"""Bench-wide Spine processes: one relay, one set of dispatchers and one set of jsonworkers serving
every site of the bench on which Spine is installed, each site kept apart (its own kafka block,
consumer group, queue, Message Log) and failing or pausing on its own.

Owns which sites are served now (``sites``), a thread per site that is retried on its own
(``supervisor``), the bench-wide commands (``serve``) and ``spine-status`` for every site
(``status``). Above ``spine.desk`` in the dependency order: may import ``spine.producer``,
``spine.consumer``, ``spine.desk``, ``spine.settings`` and the plain-Python modules; only the bench
commands import ``spine.benchwide``.
"""
