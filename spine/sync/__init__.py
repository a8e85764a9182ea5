"""Document sync: mirror documents received on a topic into a local DocType, by Spine Sync Rules
set up in Desk, without writing a handler.

Owns the rules as the processor sees them (``rules``), the Spine Document Map (``document_map``:
which local document stands for which remote one, and the newest version applied), applying a
message to the local document (``apply``: find it, create/update/submit/cancel/delete/rename;
``mapping``: fields, child rows and links, waiting for missing ones; ``outcomes``: skip, wait,
fail), and asking producing sites for an initial sync
(``initial``). The processor calls ``apply`` before the row's handlers, in the same transaction as
the message's status. May import ``spine.rpc`` (the initial sync is a request), ``spine.producer``
(whose backfill answers it), ``spine.settings``, ``spine.compat`` and the plain-Python modules.
"""
