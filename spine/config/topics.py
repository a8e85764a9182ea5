"""Kafka topic name rules. Plain Python: importing it never imports Frappe."""

from __future__ import annotations

import re

_LEGAL = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TOPIC_LENGTH = 249
INITIAL_SYNC_TOPIC = "spine.sync.initial"  # sites that publish documents read requests to backfill them
KEYS_TOPIC = "spine.keys"  # compacted: each site's signing keys (public), read by every consuming site
KEY_DOCTYPE = "Spine Key"  # Header.DocType of the messages on spine.keys


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
	return "spine.reply." + re.sub(r"[^A-Za-z0-9._-]", "_", site)[: MAX_TOPIC_LENGTH - len("spine.reply.")]
