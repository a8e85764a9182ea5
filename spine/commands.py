"""Spine's bench commands. Each command parses options and calls plain code; nothing else here.

Frappe finds them through the module-level ``commands`` list.
"""

import click
from frappe.commands import get_site, pass_context

# --- producer commands (issue 3) ---

# --- consumer commands (issue 4) ---


@click.command("eventdispatcher")
@click.option("--queue", required=True, help="RQ queue the jsonworkers read (same value for both commands)")
@click.option("--numworkers", type=int, default=1, show_default=True, help="consumer processes in the group")
@pass_context
def eventdispatcher(context, queue: str, numworkers: int) -> None:
	"""Read the topics of Spine Consumer Config and hand the messages to the jsonworkers' queue."""
	from spine.spine_adapter.runtime import run_dispatchers

	run_dispatchers(get_site(context), queue, numworkers)


@click.command("jsonworker")
@click.option("--queue", required=True, help="RQ queue the eventdispatcher writes to")
@click.option("--numworkers", type=int, default=1, show_default=True, help="worker processes")
@click.option("--burst", is_flag=True, help="exit once the queue is empty")
@pass_context
def jsonworker(context, queue: str, numworkers: int, burst: bool) -> None:
	"""Store dispatched messages in Message Log and process them."""
	from spine.spine_adapter.runtime import run_workers

	run_workers(get_site(context), queue, numworkers, burst=burst)


# --- operations commands (issue 5) ---

commands = [eventdispatcher, jsonworker]
