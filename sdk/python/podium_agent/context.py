"""The `ctx` handed to on_start / on_message / on_stop, and the host-answered requests behind ask()."""

import _thread
import posix
import sys


class Cancelled(Exception):
    """Raised by ask / request_permission when the turn is cancelled or the agent stops."""


class AgentInfo:
    """Who and where the agent is; passed to a callable `initial_state` that takes an argument."""

    __slots__ = ("instance_id", "agent_id", "deployment_id", "workspace", "env")

    def __init__(self, instance_id, agent_id, deployment_id, workspace, env):
        self.instance_id = instance_id
        self.agent_id = agent_id
        self.deployment_id = deployment_id
        self.workspace = workspace
        self.env = env


class TurnControl:
    """Per-turn flags shared with the reader thread (which sets `cancelled`)."""

    __slots__ = ("turn", "cancelled")

    def __init__(self, turn):
        self.turn = turn
        self.cancelled = False


_HOST_CALL_TIMEOUT_S = 30


def _when(when):
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


def _answered(value):
    if not isinstance(value, dict):
        raise ValueError("the host's answer is not an object")
    if isinstance(value.get("error"), str):
        raise ValueError(value["error"])
    return value


def _new_id():
    b = bytearray(posix.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _running_loop():
    asyncio = sys.modules.get("asyncio")
    return asyncio._get_running_loop() if asyncio is not None else None


def _settle_future(future, value, error):
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class _Pending:
    __slots__ = ("id", "control", "lock", "future", "loop", "value", "error", "done")

    def __init__(self, id, control, loop):
        self.id = id
        self.control = control
        self.loop = loop
        self.future = loop.create_future() if loop is not None else None
        self.lock = None
        if loop is None:
            self.lock = _thread.allocate_lock()
            self.lock.acquire()
        self.value = None
        self.error = None
        self.done = False


class PendingRequests:
    """Events sent with content.request_id, waiting for the host's `answer` {id, value}."""

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._waiting = {}

    def register(self, id, control, loop=None):
        pending = _Pending(id, control, loop)
        with self._lock:
            self._waiting[id] = pending
        if control.cancelled:  # cancel() sets the flag before it looks at _waiting
            self._settle(pending, error=Cancelled("turn was cancelled"))
        return pending

    def answer(self, id, value):
        pending = self._waiting.get(id)
        if pending is None:
            return False
        self._settle(pending, value=value)
        return True

    def cancel(self, control, reason):
        """Fails the requests of `control`'s turn (all requests when control is None)."""
        with self._lock:
            victims = [p for p in self._waiting.values() if control is None or p.control is control]
        for pending in victims:
            self._settle(pending, error=Cancelled(reason))

    def discard(self, pending):
        with self._lock:
            self._waiting.pop(pending.id, None)
            pending.done = True

    def _settle(self, pending, value=None, error=None):
        with self._lock:
            if pending.done:
                return
            pending.done = True
            self._waiting.pop(pending.id, None)
        pending.value = value
        pending.error = error
        if pending.future is not None:
            try:
                pending.loop.call_soon_threadsafe(_settle_future, pending.future, value, error)
            except RuntimeError:  # loop closed
                pass
        else:
            pending.lock.release()

    def wait(self, pending, timeout):
        if not pending.lock.acquire(True, -1 if timeout is None else timeout):
            self.discard(pending)
            raise TimeoutError(f"no answer to request {pending.id} within {timeout} s")
        if pending.error is not None:
            raise pending.error
        return pending.value

    async def wait_async(self, pending, timeout):
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

    def __init__(self, ctx):
        self._ctx = ctx

    def __call__(self, *args, level="info"):
        self._ctx._runtime.log(level, args, self._ctx.turn)

    def debug(self, *args):
        self(*args, level="debug")

    def info(self, *args):
        self(*args, level="info")

    def warn(self, *args):
        self(*args, level="warn")

    warning = warn

    def error(self, *args):
        self(*args, level="error")


class AgentContext:
    """What a handler gets: send, state, log, ask, request_permission, cancelled, ids, env."""

    def __init__(self, runtime, control):
        self._runtime = runtime
        self._control = control
        self.turn = control.turn
        info = runtime.info
        self.instance_id = info.instance_id
        self.agent_id = info.agent_id
        self.deployment_id = info.deployment_id
        self.workspace = info.workspace
        self.env = info.env
        self.log = _Log(self)

    @property
    def state(self):
        """The agent's state (a dict). Mutate it in place or assign a new dict; changes become ops."""
        return self._runtime.tracker.root

    @state.setter
    def state(self, value):
        self._runtime.tracker.replace(value)

    @property
    def cancelled(self):
        """True once the host cancelled this turn (or the agent is stopping)."""
        return self._control.cancelled

    def send(self, message_type, content=None):
        """Emits an event for this turn, e.g. ctx.send("stream_update", {"text": "..."})."""
        if type(message_type) is not str or not 0 < len(message_type) <= 128:
            raise TypeError("send(message_type): message_type must be a non-empty str of at most 128 characters")
        frame = {"type": "event", "turn": self.turn, "messageType": message_type}
        if content is not None:
            if not isinstance(content, dict):
                raise TypeError("send(message_type, content): content must be a dict")
            frame["content"] = content
        try:
            self._runtime.writer.write_event(frame)
        except ValueError as error:
            raise TypeError(f"send({message_type!r}): content is not JSON: {error}") from None

    # ---- requests answered by the host ----

    def ask(self, question, *, choices=None, timeout=None, **details):
        """Sends tool.question_requested {request_id, question, choices?, **details}; returns the answer.

        Always blocks until the answer comes, and returns it: for sync handlers. In an async handler use
        `await ctx.ask_async(...)` (ask() there would block the event loop, and says so in the log once).
        Raises Cancelled when the turn is cancelled, TimeoutError after `timeout` seconds.
        """
        return self._request("tool.question_requested", self._question(question, choices, details), timeout, "ask")

    async def ask_async(self, question, *, choices=None, timeout=None, **details):
        """ask() for async handlers: `answer = await ctx.ask_async(...)`."""
        return await self._request_async("tool.question_requested", self._question(question, choices, details), timeout)

    def request_permission(self, request=None, *, timeout=None, **fields):
        """Sends tool.permission_requested {request_id, **request}; blocks and returns the answer (see ask)."""
        return self._request("tool.permission_requested", {**(request or {}), **fields}, timeout, "request_permission")

    async def request_permission_async(self, request=None, *, timeout=None, **fields):
        """request_permission() for async handlers."""
        return await self._request_async("tool.permission_requested", {**(request or {}), **fields}, timeout)

    @staticmethod
    def _question(question, choices, details):
        content = dict(details)
        content["question"] = question
        if choices is not None:
            content["choices"] = list(choices)
        return content

    def _request(self, message_type, content, timeout, name):
        if _running_loop() is not None and not self._runtime.warned_blocking:
            # Works (answers arrive on the reader thread) but stalls every other task of the loop.
            self._runtime.warned_blocking = True
            self.log.warn(f"ctx.{name}() blocks the event loop until the answer comes; in async handlers use await ctx.{name}_async(...)")
        requests = self._runtime.requests
        pending = self._start(message_type, content, None)
        return requests.wait(pending, timeout)

    async def _request_async(self, message_type, content, timeout):
        import asyncio

        pending = self._start(message_type, content, asyncio.get_running_loop())
        return await self._runtime.requests.wait_async(pending, timeout)

    # ---- schedules (answered by the host) ----

    def schedule(self, when, message=None):
        """Schedules `message` as a later turn of this agent; returns the schedule's id.

        `when`: a delay in milliseconds (int or float), a datetime (naive means UTC), or a cron expression
        (str, UTC; 5 fields, or 6 with seconds first). The turn gets `message` plus
        {"scheduled": {"id", "due_at"}}. Blocks for the host's answer (in async handlers use
        `await ctx.schedule_async(...)`). Raises ValueError when the host refuses it (a bad cron, too many).
        """
        return self._host_call({"op": "create", "when": _when(when), "message": dict(message or {})})["schedule"]["id"]

    async def schedule_async(self, when, message=None):
        """schedule() for async handlers."""
        return (await self._host_call_async({"op": "create", "when": _when(when), "message": dict(message or {})}))["schedule"]["id"]

    def cancel_schedule(self, schedule_id):
        """Cancels a schedule; False when there is none with this id (it ran, or never existed)."""
        return self._host_call({"op": "cancel", "scheduleId": str(schedule_id)}).get("cancelled") is True

    async def cancel_schedule_async(self, schedule_id):
        """cancel_schedule() for async handlers."""
        return (await self._host_call_async({"op": "cancel", "scheduleId": str(schedule_id)})).get("cancelled") is True

    def schedules(self):
        """The agent's schedules, soonest first: [{"id", "when", "message", "due_at", "created_at", "source"}]."""
        return self._host_call({"op": "list"})["schedules"]

    async def schedules_async(self):
        """schedules() for async handlers."""
        return (await self._host_call_async({"op": "list"}))["schedules"]

    def _host_call(self, request):
        requests = self._runtime.requests
        pending = self._send_call(request, None)
        return _answered(requests.wait(pending, _HOST_CALL_TIMEOUT_S))

    async def _host_call_async(self, request):
        import asyncio

        pending = self._send_call(request, asyncio.get_running_loop())
        return _answered(await self._runtime.requests.wait_async(pending, _HOST_CALL_TIMEOUT_S))

    def _send_call(self, request, loop):
        request_id = _new_id()
        requests = self._runtime.requests
        pending = requests.register(request_id, self._control, loop)
        try:
            self._runtime.writer.write({"type": "schedule", "id": request_id, **request})
        except BaseException:
            requests.discard(pending)
            raise
        return pending

    def _start(self, message_type, content, loop):
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
