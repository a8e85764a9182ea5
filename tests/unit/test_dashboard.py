"""The Grafana dashboard asks only for metrics Spine serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from spine.metrics import DEFINITIONS

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "spine-grafana.json"


def test_every_metric_the_dashboard_queries_is_served():
	panels = json.loads(DASHBOARD.read_text())["panels"]
	asked = {
		re.sub(r"_(bucket|count|sum)$", "", name)
		for panel in panels
		for target in panel["targets"]
		for name in re.findall(r"\b(spine_[a-z_]+)\b", target["expr"])
	}
	assert asked, "the dashboard queries Spine's metrics"
	assert asked <= set(DEFINITIONS), asked - set(DEFINITIONS)
	assert {"spine_consumer_lag", "spine_messages_handled_total", "spine_stored_to_handled_seconds"} <= asked


def test_metric_names_follow_prometheus_conventions():
	for name, (kind, text, labels) in DEFINITIONS.items():
		assert name.startswith("spine_") and text and "site" in labels, name
		assert name.endswith("_total") == (kind == "counter"), name
		assert kind != "histogram" or name.endswith("_seconds"), name
