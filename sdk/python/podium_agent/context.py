"""The `ctx` handed to on_start / on_message / on_stop, and the host-answered requests behind ask()."""

from __future__ import annotations

import _thread
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import datetime
    from collections.abc import Iterable, Mapping

    from .json_value import JsonInput, JsonObject, JsonValue
    from .runner import Runtime
    from .tracked_state import StateTracker, TrackedDict


class Cancelled(Exception):
    """Raised by ask / request_permission when the turn is cancelled or the agent stops."""


class AgentInfo:
    """Who and where the agent is; passed to a callable `initial_state` that takes an argument."""

    __slots__ = ("instance_id", "agent_id", "deployment_id", "workspace", "env")

    instance_id: str
    agent_id: str
    deployment_id: str
    workspace: str
    env: dict[str, str]

    def __init__(self, instance_id: str, agent_id: str, deployment_id: str, workspace: str, env: dict[str, str]) -> None:
        self.instance_id = instance_id
        self.agent_id = agent_id
        self.deployment_id = deployment_id
        self.workspace = workspace
        self.env = env


class TurnControl:
    """Per-turn flags shared with the reader thread (which sets `cancelled`)."""

    __slots__ = ("turn", "cancelled", "traceparent", "tracestate")

    def __init__(self, turn: int, traceparent: str | None = None, tracestate: str | None = None) -> None:
        self.turn = turn
        self.cancelled = False
        self.traceparent = traceparent
        self.tracestate = tracestate


_HOST_CALL_TIMEOUT_S = 30


def _when(when: float | datetime.datetime | str) -> JsonObject:
    import datetime

    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return {"delay_ms": when}
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return {"at": when.isoformat(timespec="milliseconds")}
    if isinstance(when, str):
        return {"cron": when}
    raise TypeError("schedule(when): when must be a delay in ms, a datetime, or a cron expression")


def _answered(value: JsonValue) -> JsonObject:
    if not isinstance(value, dict):
        raise ValueError("the host's answer is not an object")
    if isinstance(value.get("error"), str):
        raise ValueError(value["error"])
    return value


def _created(answer: JsonObject) -> str:
    schedule = answer.get("schedule")
    schedule_id = schedule.get("id") if isinstance(schedule, dict) else None
    if not isinstance(schedule_id, str):
        raise ValueError("the host's answer has no schedule id")
    return schedule_id


def _listed(answer: JsonObject) -> list[JsonObject]:
    schedules = answer.get("schedules")
    if not isinstance(schedules, list):
        raise ValueError("the host's answer has no schedule list")
    return [s for s in schedules if isinstance(s, dict)]


def _merged(request: Mapping[str, JsonInput] | None, fields: dict[str, JsonInput]) -> dict[str, JsonInput]:
    content: dict[str, JsonInput] = {**request} if request else {}
    content.update(fields)
    return content


def _new_id() -> str:

    b = bytearray(posix.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    module = sys.modules.get("asyncio")
    return module._get_running_loop() if module is not None else None


def _settle_future(future: asyncio.Future[JsonValue], value: JsonValue, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class _Pending:
    __slots__ = ("id", "control", "lock", "future", "loop", "value", "error", "done")

    def __init__(self, id: str, control: TurnControl, loop: asyncio.AbstractEventLoop | None) -> None:
        self.id = id
        self.control = control
        self.loop = loop
        self.future: asyncio.Future[JsonValue] | None = loop.create_future() if loop is not None else None
        self.lock: _thread.LockType | None = None
        if loop is None:
            self.lock = _thread.allocate_lock()
            self.lock.acquire()
        self.value: JsonValue = None
        self.error: BaseException | None = None
        self.done = False


class PendingRequests:
    """Events sent with content.request_id, waiting for the host's `answer` {id, value}."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._waiting: dict[str, _Pending] = {}

    def register(self, id: str, control: TurnControl, loop: asyncio.AbstractEventLoop | None = None) -> _Pending:
        pending = _Pending(id, control, loop)
        with self._lock:
            self._waiting[id] = pending
        if control.cancelled:  # cancel() sets the flag before it looks at _waiting
            self._settle(pending, error=Cancelled("turn was cancelled"))
        return pending

    def answer(self, id: str, value: JsonValue) -> bool:
        pending = self._waiting.get(id)
        if pending is None:
            return False
        self._settle(pending, value=value)
        return True

    def cancel(self, control: TurnControl | None, reason: str) -> None:
        """Fails the requests of `control`'s turn (all requests when control is None)."""
        with self._lock:
            victims = [p for p in self._waiting.values() if control is None or p.control is control]
        for pending in victims:
            self._settle(pending, error=Cancelled(reason))

    def discard(self, pending: _Pending) -> None:
        with self._lock:
            self._waiting.pop(pending.id, None)
            pending.done = True

    def _settle(self, pending: _Pending, value: JsonValue = None, error: BaseException | None = None) -> None:
        with self._lock:
            if pending.done:
                return
            pending.done = True
            self._waiting.pop(pending.id, None)
        pending.value = value
        pending.error = error
        if pending.future is not None and pending.loop is not None:
            try:
                pending.loop.call_soon_threadsafe(_settle_future, pending.future, value, error)
            except RuntimeError:  # loop closed
                pass
        elif pending.lock is not None:
            pending.lock.release()

    def wait(self, pending: _Pending, timeout: float | None) -> JsonValue:
        assert pending.lock is not None, "a request made for an event loop is awaited with wait_async"
        if not pending.lock.acquire(True, -1 if timeout is None else timeout):
            self.discard(pending)
            raise TimeoutError(f"no answer to request {pending.id} within {timeout} s")
        if pending.error is not None:
            raise pending.error
        return pending.value

    async def wait_async(self, pending: _Pending, timeout: float | None) -> JsonValue:
        assert pending.future is not None, "a request made without an event loop is waited for with wait"
        if timeout is None:
            return await pending.future
        import asyncio

        try:
            return await asyncio.wait_for(pending.future, timeout)
        except asyncio.TimeoutError:
            self.discard(pending)
            raise TimeoutError(f"no answer to request {pending.id} within {timeout} s") from None


class _Log:
    """ctx.log(*args, level="info"), plus ctx.log.debug / info / warn / error."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: AgentContext) -> None:
        self._ctx = ctx

    def __call__(self, *args: object, level: str = "info") -> None:
        """Sends a `log` frame: the arguments joined by spaces (str() of non-strings), at `level`
        ("debug", "info", "warn" or "error")."""
        self._ctx._runtime.log(level, args, self._ctx.turn)

    def debug(self, *args: object) -> None:
        self(*args, level="debug")

    def info(self, *args: object) -> None:
        self(*args, level="info")

    def warn(self, *args: object) -> None:
        self(*args, level="warn")

    warning = warn

    def error(self, *args: object) -> None:
        self(*args, level="error")


class AgentContext:
    """What a handler gets: send, state, log, ask, request_permission, cancelled, ids, env."""

    turn: int
    """This turn's number (0 in on_start; the last turn in on_stop / on_hibernate)."""
    instance_id: str
    agent_id: str
    deployment_id: str
    workspace: str
    """The workspace's absolute path (also the process's cwd)."""
    env: dict[str, str]
    """init.env: the deployment's environment and secrets (also in os.environ)."""
    log: _Log
    """ctx.log(*args, level="info"), ctx.log.debug / info / warn / error(*args)."""
    traceparent: str | None
    """The turn's W3C trace context ("00-<trace id>-<span id>-<flags>"), when the message came with one or the
    platform traces: send it as the `traceparent` header of the agent's own calls to continue the trace.
    None in on_start / on_stop and for an untraced message."""
    tracestate: str | None
    """The W3C `tracestate` that came with traceparent (send it beside it), or None."""

    def __init__(self, runtime: Runtime, control: TurnControl) -> None:
        self._runtime = runtime
        self._control = control
        self.turn = control.turn
        self.traceparent = control.traceparent
        self.tracestate = control.tracestate
        info = runtime.info
        self.instance_id = info.instance_id
        self.agent_id = info.agent_id
        self.deployment_id = info.deployment_id
        self.workspace = info.workspace
        self.env = info.env
        self.log = _Log(self)

    @property
    def state(self) -> TrackedDict:
        """The agent's state (a dict). Mutate it in place or assign a new dict; changes become ops."""
        return self._tracker().root

    @state.setter
    def state(self, value: Mapping[str, JsonInput]) -> None:
        self._tracker().replace(value)

    def _tracker(self) -> StateTracker:
        tracker = self._runtime.tracker
        if tracker is None:
            raise RuntimeError("ctx.state is not available before the state is loaded")
        return tracker

    @property
    def cancelled(self) -> bool:
        """True once the host cancelled this turn (or the agent is stopping)."""
        return self._control.cancelled

    def send(self, message_type: str, content: Mapping[str, JsonInput] | None = None) -> None:
        """Emits an event for this turn, e.g. ctx.send("stream_update", {"text": "..."}).

        Raises TypeError when message_type is not a str of 1..128 characters or content is not a
        JSON object (a dict, or another mapping, which is copied into one).
        """
        if type(message_type) is not str or not 0 < len(message_type) <= 128:
            raise TypeError("send(message_type): message_type must be a non-empty str of at most 128 characters")
        frame: dict[str, object] = {"type": "event", "turn": self.turn, "messageType": message_type}
        if content is not None:
            if not isinstance(content, dict):
                if not callable(getattr(content, "keys", None)):
                    raise TypeError("send(message_type, content): content must be a dict")
                content = dict(content)
            frame["content"] = content
        try:
            self._runtime.writer.write_event(frame)
        except ValueError as error:
            raise TypeError(f"send({message_type!r}): content is not JSON: {error}") from None

    # ---- requests answered by the host ----

    def ask(self, question: str, *, choices: Iterable[str] | None = None, timeout: float | None = None, **details: JsonInput) -> JsonValue:
        """Sends tool.question_requested {request_id, question, choices?, **details}; returns the answer.

        Always blocks until the answer comes, and returns it: for sync handlers. In an async handler use
        `await ctx.ask_async(...)` (ask() there would block the event loop, and says so in the log once).
        Raises Cancelled when the turn is cancelled, TimeoutError after `timeout` seconds.
        """
        return self._request("tool.question_requested", self._question(question, choices, details), timeout, "ask")

    async def ask_async(self, question: str, *, choices: Iterable[str] | None = None, timeout: float | None = None, **details: JsonInput) -> JsonValue:
        """ask() for async handlers: `answer = await ctx.ask_async(...)`."""
        return await self._request_async("tool.question_requested", self._question(question, choices, details), timeout)

    def request_permission(self, request: Mapping[str, JsonInput] | None = None, *, timeout: float | None = None, **fields: JsonInput) -> JsonValue:
        """Sends tool.permission_requested {request_id, **request}; blocks and returns the answer (see ask)."""
        return self._request("tool.permission_requested", _merged(request, fields), timeout, "request_permission")

    async def request_permission_async(self, request: Mapping[str, JsonInput] | None = None, *, timeout: float | None = None, **fields: JsonInput) -> JsonValue:
        """request_permission() for async handlers."""
        return await self._request_async("tool.permission_requested", _merged(request, fields), timeout)

    @staticmethod
    def _question(question: str, choices: Iterable[str] | None, details: dict[str, JsonInput]) -> dict[str, JsonInput]:
        content = dict(details)
        content["question"] = question
        if choices is not None:
            content["choices"] = list(choices)
        return content

    def _request(self, message_type: str, content: dict[str, JsonInput], timeout: float | None, name: str) -> JsonValue:
        if _running_loop() is not None and not self._runtime.warned_blocking:
            # Works (answers arrive on the reader thread) but stalls every other task of the loop.
            self._runtime.warned_blocking = True
            self.log.warn(f"ctx.{name}() blocks the event loop until the answer comes; in async handlers use await ctx.{name}_async(...)")
        requests = self._runtime.requests
        pending = self._start(message_type, content, None)
        return requests.wait(pending, timeout)

    async def _request_async(self, message_type: str, content: dict[str, JsonInput], timeout: float | None) -> JsonValue:
        import asyncio

        pending = self._start(message_type, content, asyncio.get_running_loop())
        return await self._runtime.requests.wait_async(pending, timeout)

    # ---- schedules (answered by the host) ----

    def schedule(self, when: float | datetime.datetime | str, message: Mapping[str, JsonInput] | None = None) -> str:
        """Schedules `message` as a later turn of this agent; returns the schedule's id.

        `when`: a delay in milliseconds (int or float), a datetime (naive means UTC), or a cron expression
        (str, UTC; 5 fields, or 6 with seconds first). The turn gets `message` plus
        {"scheduled": {"id", "due_at"}}. Blocks for the host's answer (in async handlers use
        `await ctx.schedule_async(...)`). Raises ValueError when the host refuses it (a bad cron, too many).
        """
        return _created(self._host_call({"op": "create", "when": _when(when), "message": dict(message or {})}))

    async def schedule_async(self, when: float | datetime.datetime | str, message: Mapping[str, JsonInput] | None = None) -> str:
        """schedule() for async handlers."""
        return _created(await self._host_call_async({"op": "create", "when": _when(when), "message": dict(message or {})}))

    def cancel_schedule(self, schedule_id: str) -> bool:
        """Cancels a schedule; False when there is none with this id (it ran, or never existed)."""
        return self._host_call({"op": "cancel", "scheduleId": str(schedule_id)}).get("cancelled") is True

    async def cancel_schedule_async(self, schedule_id: str) -> bool:
        """cancel_schedule() for async handlers."""
        return (await self._host_call_async({"op": "cancel", "scheduleId": str(schedule_id)})).get("cancelled") is True

    def schedules(self) -> list[JsonObject]:
        """The agent's schedules, soonest first: [{"id", "when", "message", "due_at", "created_at", "source"}]."""
        return _listed(self._host_call({"op": "list"}))

    async def schedules_async(self) -> list[JsonObject]:
        """schedules() for async handlers."""
        return _listed(await self._host_call_async({"op": "list"}))

    def _host_call(self, request: dict[str, JsonInput]) -> JsonObject:
        requests = self._runtime.requests
        pending = self._send_call(request, None)
        return _answered(requests.wait(pending, _HOST_CALL_TIMEOUT_S))

    async def _host_call_async(self, request: dict[str, JsonInput]) -> JsonObject:
        import asyncio

        pending = self._send_call(request, asyncio.get_running_loop())
        return _answered(await self._runtime.requests.wait_async(pending, _HOST_CALL_TIMEOUT_S))

    def _send_call(self, request: dict[str, JsonInput], loop: asyncio.AbstractEventLoop | None) -> _Pending:
        request_id = _new_id()
        requests = self._runtime.requests
        pending = requests.register(request_id, self._control, loop)
        try:
            self._runtime.writer.write({"type": "schedule", "id": request_id, **request})
        except BaseException:
            requests.discard(pending)
            raise
        return pending

    def _start(self, message_type: str, content: dict[str, JsonInput], loop: asyncio.AbstractEventLoop | None) -> _Pending:

        if self._control.cancelled:
            raise Cancelled("turn was cancelled")
        request_id = _new_id()
        content["request_id"] = request_id
        requests = self._runtime.requests
        pending = requests.register(request_id, self._control, loop)
        try:
            self.send(message_type, content)
        except BaseException:
            requests.discard(pending)
            raise
        return pending
