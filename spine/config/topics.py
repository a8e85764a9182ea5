"""Kafka topic name rules. Plain Python: importing it never imports Frappe."""

from __future__ import annotations

import re

_LEGAL = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TOPIC_LENGTH = 249
INITIAL_SYNC_TOPIC = "spine.sync.initial"  # sites that publish documents read requests to backfill them
KEYS_TOPIC = "spine.keys"  # compacted: each site's signing keys (public), read by every consuming site
KEY_DOCTYPE = "Spine Key"  # Header.DocType of the messages on spine.keys
SCHEMAS_TOPIC = "spine.schemas"  # compacted: the latest schema of each topic and DocType
REPLY_PREFIX = "spine.reply."
# A reply or an initial-sync request is worth nothing after its deadline (seconds), and one read late
# is stored as Skipped anyway: an hour keeps them through any restart without piling them up
SHORT_RETENTION_MS = 3_600_000


def topic_name_problem(name: str | None) -> str | None:
	"""Why ``name`` cannot be a Kafka topic, or None when it can (Kafka's own rules)."""
	if not name or not name.strip():
		return "a topic name is required"
	if name != name.strip():
		return f"topic {name!r} has leading or trailing spaces"
	if name in {".", ".."}:
		return f"topic {name!r} is reserved by Kafka"
	if len(name) > MAX_TOPIC_LENGTH:
		return f"topic name is {len(name)} characters; Kafka allows at most {MAX_TOPIC_LENGTH}"
	if not _LEGAL.match(name):
		bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9._-]", c)})
		return f"topic {name!r} contains {''.join(bad)!r}; use only letters, digits, '.', '_' and '-'"
	return None


def reply_topic(site: str) -> str:
	"""The topic a site's request/reply answers come back on: one per site, ``spine.reply.<site>``."""
	return REPLY_PREFIX + re.sub(r"[^A-Za-z0-9._-]", "_", site)[: MAX_TOPIC_LENGTH - len(REPLY_PREFIX)]


def own_topic_config(topic: str) -> dict[str, str]:
	"""The topic configuration Spine creates its own topic ``topic`` with: ``spine.keys`` and
	``spine.schemas`` are compacted (the latest value per key is what readers need, forever); reply
	topics and ``spine.sync.initial`` keep messages an hour (they expire with their deadline); any
	other topic gets the broker's defaults."""
	if topic in (KEYS_TOPIC, SCHEMAS_TOPIC):
		return {"cleanup.policy": "compact"}
	if topic == INITIAL_SYNC_TOPIC or topic.startswith(REPLY_PREFIX):
		return {"retention.ms": str(SHORT_RETENTION_MS)}
	return {}
