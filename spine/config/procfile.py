"""Procfile and supervisor entries for Spine's consumer processes. Plain Python: never imports Frappe."""

from __future__ import annotations

from pathlib import Path


def procfile_lines(site: str | None, queue: str, numworkers: int) -> list[str]:
	"""Procfile lines for ``spine-relay``, ``eventdispatcher`` and ``jsonworker``: serving every site
	of the bench when ``site`` is None, else only ``site`` (the two ``--queue`` values match)."""
	tag, on = ("_" + site.replace(".", "_"), f"--site {site} ") if site else ("", "")
	return [
		f"spine_relay{tag}: bench {on}spine-relay",
		f"spine_dispatcher{tag}: bench {on}eventdispatcher --queue {queue} --numworkers {numworkers}",
		f"spine_worker{tag}: bench {on}jsonworker --queue {queue} --numworkers {numworkers}",
	]


def supervisor_conf(site: str | None, queue: str, numworkers: int, bench_path: str, user: str) -> str:
	"""A supervisor config for the three processes (of every site when ``site`` is None): QUIT stops
	them cleanly (batch finished, offsets committed)."""
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
