"""Where Spine's log lines go: ``logs/spine.log`` of the bench, one line per event, naming the process.

Every Spine module logs through the standard ``logging`` hierarchy under ``spine`` (plain-Python
modules use ``logging.getLogger(__name__)``). ``setup()`` attaches, once per process, a rotating
file handler to the ``spine`` logger, at INFO whatever Frappe's own log level (Frappe logs only
errors in production, which would hide "will retry" warnings). librdkafka's own lines arrive
under ``spine.librdkafka`` (see ``kafka_logger``) and go to the same file, never to the terminal.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler

LIBRDKAFKA = "spine.librdkafka"
_FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"
_configured_pid: int | None = None


def setup(bench_path: str | None = None) -> logging.Logger:
	"""The ``spine`` logger, writing to ``<bench>/logs/spine.log`` (set up once per process)."""
	global _configured_pid
	root = logging.getLogger("spine")
	if _configured_pid == os.getpid():
		return root
	root.setLevel(logging.DEBUG)
	logs_dir = os.path.join(bench_path or _bench_path(), "logs")
	if os.path.isdir(logs_dir):  # else: not in a bench (yet); try again on the next call
		_configured_pid = os.getpid()
		handler = RotatingFileHandler(
			os.path.join(logs_dir, "spine.log"), maxBytes=5_000_000, backupCount=10, delay=True
		)
		handler.setFormatter(logging.Formatter(_FORMAT))
		handler.addFilter(_librdkafka_debug_only_if_asked)
		root.addHandler(handler)
	return root


FILE_ONLY = {"file_only": True}
"""``extra=`` for a line meant for logs/spine.log only (the terminal already says it another way)."""


def logger(name: str = "spine") -> logging.Logger:
	"""A logger under ``spine`` whose lines reach the bench's ``logs/spine.log``."""
	setup()
	return logging.getLogger(name)


def kafka_logger() -> logging.Logger:
	"""The logger confluent-kafka clients are given (``"logger"`` setting): librdkafka's lines,
	including ``"debug"`` output, land in ``logs/spine.log`` instead of the process's stderr."""
	setup()
	log = logging.getLogger(LIBRDKAFKA)
	log.setLevel(logging.DEBUG)
	return log


def to_terminal(level: int = logging.INFO) -> None:
	"""Also print Spine's own lines (not librdkafka's) on stderr: for long-running bench commands."""
	root = setup()
	if any(getattr(h, "spine_terminal", False) for h in root.handlers):
		return
	handler = logging.StreamHandler()
	handler.spine_terminal = True
	handler.setLevel(level)
	handler.setFormatter(_WithoutTraceback("%(asctime)s %(levelname)s %(name)s: %(message)s"))
	handler.addFilter(
		lambda record: not record.name.startswith(LIBRDKAFKA) and not getattr(record, "file_only", False)
	)
	root.addHandler(handler)


class _WithoutTraceback(logging.Formatter):
	"""The terminal gets the sentence; the traceback stays in logs/spine.log."""

	def format(self, record: logging.LogRecord) -> str:
		if record.exc_info or record.exc_text:
			record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
		return super().format(record)


def _librdkafka_debug_only_if_asked(record: logging.LogRecord) -> bool:
	# librdkafka's DEBUG lines exist only when the kafka block sets "debug"; keep them then
	return record.levelno >= logging.INFO or record.name.startswith(LIBRDKAFKA)


def _bench_path() -> str:
	try:
		from frappe.utils import get_bench_path

		return get_bench_path()
	except Exception:
		return os.path.abspath("..")
