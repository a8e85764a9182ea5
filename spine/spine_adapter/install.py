"""Alias of ``spine.install``: the dotted path earlier releases published (hooks, queued jobs, Desk calls)."""

from spine.install import before_uninstall
