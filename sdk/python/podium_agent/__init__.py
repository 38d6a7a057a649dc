"""Podium Python agent SDK.

An agent is a module with `on_message(ctx, message)` (sync or `async def`) and optionally
`initial_state` (a value or a callable), `on_start(ctx)`, `on_stop(ctx)` and `on_hibernate(ctx)`. It is run by
sdk/python/podium_runner.py; see sdk/README.md.
"""

from .context import AgentContext, AgentInfo, Cancelled
from .json_value import StateValueError
from .tracked_state import TrackedDict, TrackedList

__all__ = ["AgentContext", "AgentInfo", "Cancelled", "StateValueError", "TrackedDict", "TrackedList"]
