"""Podium Python agent SDK.

An agent is a module with `on_message(ctx, message)` (sync or `async def`) and optionally
`initial_state` (a value or a callable), `on_start(ctx)`, `on_stop(ctx)` and `on_hibernate(ctx)`. The
coordinator runs it with sdk/python/podium_runner.py; installed with pip, `python -m podium_agent
<entry.py>` (or the `podium-agent-runner` command) is the same runner. See sdk/README.md.

Typed: annotate handlers with `AgentContext` and `JsonObject`; `mypy --strict` checks them against
this package (it ships `py.typed`).
"""

from .context import AgentContext, AgentInfo, Cancelled
from .json_value import JsonInput, JsonObject, JsonValue, StateValueError
from .tracked_state import TrackedDict, TrackedList

__version__ = "0.1.0"

__all__ = [
    "AgentContext",
    "AgentInfo",
    "Cancelled",
    "JsonInput",
    "JsonObject",
    "JsonValue",
    "StateValueError",
    "TrackedDict",
    "TrackedList",
]
