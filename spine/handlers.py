"""Rules for handler paths configured in Desk. Plain Python: importing it never imports Frappe.

A handler is named by a dotted path (``myapp.integrations.on_item``). Spine only calls what
resolves to a callable inside one of the site's installed apps, so a config row can never
point at ``os.system`` or a typo that fails at 3 a.m.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection
from typing import Any

from spine.errors import HandlerConfigError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def split_paths(value: str | None) -> list[str]:
	"""The handler paths in a comma-separated field, stripped, empties dropped, order kept."""
	return [p.strip() for p in (value or "").split(",") if p.strip()]


def resolve(path: str, installed_apps: Collection[str]) -> Callable[..., Any]:
	"""The callable named by ``path``.

	Raises ``HandlerConfigError`` whose message says what to fix when the path is not a dotted
	name, is outside ``installed_apps``, does not import, or is not callable.
	"""
	path = (path or "").strip()
	if not _DOTTED.match(path):
		raise HandlerConfigError(
			f"handler {path!r} is not a dotted Python path; write it as app.module.function"
		)
	app = path.split(".", 1)[0]
	if app not in installed_apps:
		raise HandlerConfigError(
			f"handler {path!r} is not inside an installed app; its first part must be one of: "
			f"{', '.join(sorted(installed_apps))}"
		)
	module_path, _, attr = path.rpartition(".")
	try:
		module = importlib.import_module(module_path)
	except ModuleNotFoundError as e:
		raise HandlerConfigError(
			f"handler {path!r}: module {module_path!r} does not exist ({e.name} not found)"
		) from None
	except Exception as e:
		raise HandlerConfigError(
			f"handler {path!r}: importing {module_path!r} fails with {type(e).__name__}: {str(e)[:200]}"
		) from None
	target = getattr(module, attr, None)
	if target is None:
		raise HandlerConfigError(f"handler {path!r}: module {module_path!r} has no attribute {attr!r}")
	if not callable(target):
		raise HandlerConfigError(f"handler {path!r} is a {type(target).__name__}, not a function")
	return target
