"""The code's shape: plain-Python modules stay free of Frappe, dependencies point one way, no circles.

Imports are read from the source (module level and inside functions alike), so a lazy import
that closes a circle or pulls Frappe into a plain module fails here, not at 3 a.m.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "spine"

# Lower layers never import higher ones. Same layer: only within one folder.
LAYERS: list[tuple[str, ...]] = [
	(
		"spine.envelope",
		"spine.cloudevents",
		"spine.registry",
		"spine.errors",
		"spine.retry",
		"spine.handlers",
		"spine.schema",
		"spine.trace",
		"spine.spans",
		"spine.signing",
		"spine.config",
		"spine.kafka",
	),
	("spine.compat", "spine.logs", "spine.metrics"),
	("spine.db_connection",),
	("spine.message_log",),
	("spine.settings",),
	("spine.producer",),
	("spine.rpc",),
	("spine.sync",),
	("spine.consumer",),
	("spine.desk",),
	("spine.benchwide",),
	("spine.install", "spine.demo", "spine.patches"),
	("spine.spine_adapter", "spine.hooks", "spine.commands", "spine"),
]
PLAIN = LAYERS[0]


def module_name(path: Path) -> str:
	parts = list(path.relative_to(ROOT).with_suffix("").parts)
	if parts[-1] == "__init__":
		parts.pop()
	return ".".join(parts)


def modules() -> dict[str, Path]:
	return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
	"""Every module ``path`` imports anywhere in its code (``from a import b`` counts a.b if b is a module)."""
	found: set[str] = set()
	for node in ast.walk(ast.parse(path.read_text())):
		if isinstance(node, ast.Import):
			found.update(a.name for a in node.names)
		elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
			found.add(node.module)
			found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
	return found


def layer(name: str) -> tuple[int, str]:
	"""(layer index, the folder or module that places it there); the longest matching prefix wins."""
	best = (-1, "")
	for i, group in enumerate(LAYERS):
		for prefix in group:
			if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best[1]):
				best = (i, prefix)
	return best


def test_every_module_has_a_layer():
	unplaced = [m for m in modules() if layer(m)[0] < 0]
	assert not unplaced


def test_plain_modules_never_import_frappe_even_lazily():
	known = set(modules())
	bad = {
		m: sorted(i for i in imports(p, known) if i == "frappe" or i.startswith("frappe."))
		for m, p in modules().items()
		if layer(m)[0] == 0
	}
	assert not {m: i for m, i in bad.items() if i}


def test_plain_modules_import_without_frappe_installed():
	"""Importing every plain module in a fresh interpreter where ``import frappe`` fails."""
	plain = sorted(m for m in modules() if layer(m)[0] == 0 and m != "spine.kafka.devbroker")
	code = "import sys; sys.modules['frappe'] = None\n" + "".join(f"import {m}\n" for m in plain)
	result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
	assert result.returncode == 0, result.stderr[-2000:]


def test_dependencies_point_down():
	known = set(modules())
	wrong = []
	for name, path in modules().items():
		mine, my_prefix = layer(name)
		for target in imports(path, known):
			if target not in known or target == name or target == "spine":
				continue
			theirs, their_prefix = layer(target)
			if theirs > mine or (theirs == mine and mine > 0 and their_prefix != my_prefix):
				wrong.append(f"{name} → {target}")
	assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_no_import_circle():
	known = set(modules())
	graph = {
		name: {t for t in imports(path, known) if t in known and t != name and t != "spine"}
		for name, path in modules().items()
	}
	state: dict[str, int] = {}
	stack: list[str] = []
	circles: list[str] = []

	def visit(node: str) -> None:
		state[node] = 1
		stack.append(node)
		for nxt in sorted(graph[node]):
			if state.get(nxt) == 1:
				circles.append(" → ".join([*stack[stack.index(nxt) :], nxt]))
			elif nxt not in state:
				visit(nxt)
		stack.pop()
		state[node] = 2

	for node in sorted(graph):
		if node not in state:
			visit(node)
	assert not circles, "\n".join(circles)


def test_spine_adapter_holds_only_the_frappe_module_and_aliases():
	"""Engine code lives in producer/consumer/desk/settings; spine_adapter keeps DocTypes and path aliases."""
	for path in (PACKAGE / "spine_adapter").glob("*.py"):
		if path.name == "__init__.py":
			continue
		tree = ast.parse(path.read_text())
		body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
		assert body and all(
			isinstance(n, ast.ImportFrom) for n in body
		), f"{path.name} must be an alias (imports only), not code"


MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200


def test_modules_and_classes_stay_small():
	"""A newcomer finds the 20 lines that matter: no module of ``spine/`` over 400 lines, no class over
	200 (tests and benchmarks are not held to it). Each module's docstring says what it owns."""
	too_big = []
	for name, path in sorted(modules().items()):
		source = path.read_text()
		lines = len(source.splitlines())
		if lines > MAX_MODULE_LINES:
			too_big.append(f"{name}: {lines} lines")
		tree = ast.parse(source)
		for node in ast.walk(tree):
			if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
				too_big.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
		if lines > 20 and not ast.get_docstring(tree):
			too_big.append(f"{name}: no docstring saying what it owns")
	assert not too_big, "\n".join(too_big)


# What writes a Message Log row: a statement that changes the table, or Frappe's setters on it.
_WRITES_MESSAGE_LOG = re.compile(
	r"(UPDATE|INSERT(\s+IGNORE)?\s+INTO|REPLACE\s+INTO)\s+`tabMessage Log`"
	r"|set_value\(\s*[\"']Message Log[\"']|get_doc\(\s*[\"']Message Log[\"'][^)]*\)\.(db_set|save|insert)",
	re.IGNORECASE,
)


def test_only_the_owner_writes_message_log():
	"""Statuses, retries and attempt history are written in one module (``spine.message_log``);
	everything else asks it. (Retention's DELETE of old rows is not a status change.)"""
	writers = {
		name: [m.group(0) for m in _WRITES_MESSAGE_LOG.finditer(path.read_text())]
		for name, path in modules().items()
		if name != "spine.message_log" and not name.startswith("spine.message_log.")
	}
	assert not {n: w for n, w in writers.items() if w}, "write Message Log through spine.message_log"


def test_the_owner_check_sees_a_write():
	assert _WRITES_MESSAGE_LOG.search("frappe.db.sql(\"UPDATE `tabMessage Log` SET status = 'Pending'\")")
	assert _WRITES_MESSAGE_LOG.search('frappe.db.set_value("Message Log", name, "status", "Failed")')
	assert not _WRITES_MESSAGE_LOG.search("SELECT status FROM `tabMessage Log`")
