"""Alias of ``spine.demo``: the handler paths the README and existing configs name
(``spine.spine_adapter.demo_handlers.record_call``, ...)."""

from spine.demo import *
