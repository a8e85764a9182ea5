"""Plain-Python configuration rules: site_config's ``kafka`` block into per-role client settings,
Kafka topic name rules, and the Procfile/supervisor text for Spine's processes.

Never imports Frappe; may import ``spine.errors`` only.
"""
