"""Procfile and supervisor entries for Spine's consumer processes. Plain Python: never imports Frappe."""

from __future__ import annotations

from pathlib import Path


def procfile_lines(site: str, queue: str, numworkers: int) -> list[str]:
	"""Procfile lines for ``spine-relay``, ``eventdispatcher`` and ``jsonworker`` of ``site``
	(the two ``--queue`` values match)."""
	tag = site.replace(".", "_")
	return [
		f"spine_relay_{tag}: bench --site {site} spine-relay",
		f"spine_dispatcher_{tag}: bench --site {site} eventdispatcher --queue {queue} --numworkers {numworkers}",
		f"spine_worker_{tag}: bench --site {site} jsonworker --queue {queue} --numworkers {numworkers}",
	]


def supervisor_conf(site: str, queue: str, numworkers: int, bench_path: str, user: str) -> str:
	"""A supervisor config for both processes: QUIT stops them cleanly (batch finished, offsets committed)."""
	blocks = []
	for line in procfile_lines(site, queue, numworkers):
		name, command = line.split(": ", 1)
		blocks.append(
			f"""[program:{name.replace("_", "-")}]
command={command}
directory={bench_path}
user={user}
stopsignal=QUIT
stopwaitsecs={150 if "worker" in name else 60}
autostart=true
autorestart=true
stdout_logfile={bench_path}/logs/{name}.log
stderr_logfile={bench_path}/logs/{name}.error.log
"""
		)
	return "\n".join(blocks)


def add_to_procfile(procfile: Path, lines: list[str]) -> list[str]:
	"""Append the ``lines`` whose process name is not in ``procfile`` yet; returns what was added."""
	existing = procfile.read_text().splitlines() if procfile.exists() else []
	names = {line.split(":", 1)[0].strip() for line in existing if ":" in line}
	added = [line for line in lines if line.split(":", 1)[0] not in names]
	if added:
		text = "\n".join(existing).rstrip("\n")
		procfile.write_text((text + "\n" if text else "") + "\n".join(added) + "\n")
	return added
