"""The Frappe module "Spine Adapter": DocTypes, the workspace, number cards and charts.

Controllers here validate and delegate; the engine lives in ``spine.producer``, ``spine.consumer``,
``spine.desk`` and ``spine.settings``. The few plain modules beside ``doctype/`` are aliases of
dotted paths earlier releases published (hooks, scheduler entries, queued jobs, Desk calls), kept
so an upgraded site still resolves them.
"""
