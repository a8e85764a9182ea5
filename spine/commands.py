"""Spine's bench commands. Each command parses options and calls plain code; nothing else here.

Frappe finds them through the module-level ``commands`` list.
"""

import click
from frappe.commands import get_site, pass_context

# --- producer commands (issue 3) ---

# --- consumer commands (issue 4) ---

# --- operations commands (issue 5) ---

commands = []
