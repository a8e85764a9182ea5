"""A throwaway Kafka-protocol broker on this machine, for development and tests.

It runs the broker binary shipped inside the ``noida-db`` PyPI package (an optional
dependency: ``pip install noida-db==0.2.3``). Production uses a real Kafka cluster.
Plain Python: importing it never imports Frappe.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from spine.errors import SpineError

_PORT_LINE = re.compile(r"^\s*kafka\s+([0-9.]+):(\d+)\s*$")


class BrokerStartError(SpineError):
	"""The local broker could not be started; the message says why and what to do."""


PACKAGE = "noida-db==0.2.3"


def package_installed() -> bool:
	"""Whether the broker's package (``PACKAGE``) is importable in this environment."""
	import importlib.util

	return importlib.util.find_spec("noida_db") is not None


def install_command() -> list[str]:
	"""The one command that installs the broker's package into this Python (the bench's env)."""
	return [sys.executable, "-m", "pip", "install", PACKAGE]


def broker_binary() -> Path:
	"""Path of the broker executable inside the installed noida-db package."""
	try:
		from importlib.resources import files

		path = Path(str(files("noida_db").joinpath("noida-db")))
	except ModuleNotFoundError:
		raise BrokerStartError(
			f"the local broker needs the {PACKAGE.split('==')[0]} package; install it into the bench's "
			f"environment with: {shlex.join(install_command())}"
		) from None
	if not path.is_file():
		raise BrokerStartError(f"noida-db is installed but its binary is missing at {path}")
	if not os.access(path, os.X_OK):
		path.chmod(0o755)
	return path


# What a site's kafka block adds for this broker: it answers an empty fetch at once instead of
# holding it (Kafka holds it for fetch.wait.max.ms), so an idle dispatcher rests between polls.
CLIENT_SETTINGS = {"spine.consumer.idle.pause.ms": 10}


@dataclass
class LocalBroker:
	"""A running local broker. ``bootstrap_servers`` is what goes into site_config's kafka block."""

	bootstrap_servers: str
	data_dir: str
	process: subprocess.Popen | None = None
	output: list[str] = field(default_factory=list)
	remove_data_on_stop: bool = False

	@classmethod
	def start(
		cls, data_dir: str | None = None, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 30
	) -> LocalBroker:
		"""Start a broker (port 0: any free port) and return once it accepts connections.

		Without ``data_dir`` the broker keeps its data in a new temporary folder, removed on ``stop``.
		"""
		temporary = data_dir is None
		data_dir = data_dir or tempfile.mkdtemp(prefix="spine-broker-")
		cmd = [
			str(broker_binary()),
			"start",
			"--only",
			"kafka",
			"--host",
			host,
			"--kafka-port",
			str(port),
			"--data-dir",
			data_dir,
		]
		proc = subprocess.Popen(
			cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
		)
		broker = cls(bootstrap_servers="", data_dir=data_dir, process=proc, remove_data_on_stop=temporary)
		found = threading.Event()

		def read() -> None:
			assert proc.stdout is not None
			for line in proc.stdout:
				broker.output.append(line.rstrip())
				m = _PORT_LINE.match(line)
				if m and not found.is_set():
					broker.bootstrap_servers = f"{m.group(1)}:{m.group(2)}"
					found.set()

		threading.Thread(target=read, daemon=True, name="spine-broker-output").start()
		deadline = time.monotonic() + timeout
		while not found.wait(0.1):
			if proc.poll() is not None or time.monotonic() > deadline:
				broker.stop()
				raise BrokerStartError(
					"the local broker did not start: " + " | ".join(broker.output[-5:] or ["no output"])
				)
		return broker

	def stop(self, timeout: float = 10) -> None:
		"""Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds).

		Data stays in ``data_dir`` unless the broker made that folder itself.
		"""
		proc, self.process = self.process, None
		if proc is not None and proc.poll() is None:
			proc.send_signal(signal.SIGTERM)
			try:
				proc.wait(timeout)
			except subprocess.TimeoutExpired:
				proc.kill()
				proc.wait(timeout)
		if self.remove_data_on_stop:
			shutil.rmtree(self.data_dir, ignore_errors=True)
