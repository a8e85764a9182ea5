"""What operators use from Desk and the shell: spine-status, Message Log actions (Retry, Replay,
Republish), retention, the workspace's numbers and charts, and Check connection.

Top of the dependency order: may import ``spine.producer``, ``spine.consumer``, ``spine.settings``,
``spine.compat`` and the plain-Python modules; nothing below imports ``spine.desk``.
"""
