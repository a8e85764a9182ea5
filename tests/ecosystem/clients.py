"""An environment of stock clients (``stock_clients.py``): a virtualenv of its own, made once in
``~/.cache/spine/`` with the pinned packages below, so the tests' clients are what other teams run
and nothing of them enters Frappe's environment (confluent-kafka's Schema Registry extra needs a
cachetools newer than Frappe pins)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("confluent-kafka[schemaregistry,json,avro]==2.16.2", "cloudevents==2.2.0")
SCRIPT = Path(__file__).with_name("stock_clients.py")


def python() -> str:
	"""The environment's python, made on first use."""
	tag = hashlib.sha256("\n".join(PACKAGES).encode()).hexdigest()[:10]
	cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
	venv = cache / "spine" / f"stock-clients-{tag}"
	exe = venv / "bin" / "python"
	ready = venv / ".ready"
	if ready.exists():
		return str(exe)
	venv.parent.mkdir(parents=True, exist_ok=True)
	with open(venv.parent / f".{venv.name}.lock", "w") as lock:
		fcntl.flock(lock, fcntl.LOCK_EX)
		if not ready.exists():
			base = os.environ.get("SPINE_CLIENTS_PYTHON") or sys.executable
			subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
			done = subprocess.run(
				[str(exe), "-m", "pip", "install", "-q", *PACKAGES], capture_output=True, text=True
			)
			if done.returncode != 0:
				raise RuntimeError(f"installing the stock clients failed: {done.stderr[-2000:]}")
			ready.touch()
	return str(exe)


def run(command: str, *args: Any, timeout: float = 120) -> Any:
	"""Run one ``stock_clients.py`` command; its JSON answer."""
	done = subprocess.run(
		[python(), str(SCRIPT), command, *[a if isinstance(a, str) else json.dumps(a) for a in args]],
		capture_output=True, text=True, timeout=timeout,
	)  # fmt: skip
	if done.returncode != 0:
		raise AssertionError(f"stock client {command} failed: {done.stderr[-3000:]}")
	return json.loads(done.stdout.strip().splitlines()[-1])
