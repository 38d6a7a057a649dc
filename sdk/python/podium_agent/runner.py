"""The runner's life cycle (services/coordinator/agent-protocol.ts): init -> load state -> on_start
-> ready -> one turn at a time -> stop/EOF -> on_stop (on_hibernate when hibernating) -> stopped.

A reader thread handles cancel / answer as they arrive and queues init / message / stop for the
main thread. Handlers may be plain functions or `async def`; asyncio is imported only when the
entry module has a coroutine handler (or a handler returns an awaitable).
"""

from __future__ import annotations

import _queue
import _thread
import atexit
import posix
import sys
import time

from .context import AgentContext, AgentInfo, Cancelled, PendingRequests, TurnControl
from .frames import FrameChannelClosed, FrameWriter, start_reader
from .protocol import AGENT_PROTOCOL_VERSION
from .tracked_state import StateTracker

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable, Coroutine
    from types import ModuleType
    from typing import Any

    from .json_value import JsonObject
    from .protocol import AgentError, FatalFrame, ReadyFrame, TurnDoneFrame

    #: The entry module's hooks: on_message, on_start, on_stop, on_hibernate (callables or None) and
    #: initial_state (a value or a callable); agent code, so their signatures are the agent's own.
    Hooks = dict[str, Any]
    Call = Callable[..., Awaitable[Any]]

SDK_VERSION = "podium-py/0.1.0"
_ASYNC_FLAGS = 0x80 | 0x100  # CO_COROUTINE | CO_ITERABLE_COROUTINE
_EOF_GRACE_MS = 5000
_WATCHDOG_SLACK_S = 1.0


def _watchdog(grace_s: float) -> None:
    """The host SIGKILLs at graceMs; after EOF there may be no host left to do it."""
    time.sleep(grace_s + _WATCHDOG_SLACK_S)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    posix._exit(1)


def _is_async(fn: object) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & _ASYNC_FLAGS)


def _takes_argument(fn: object) -> bool:
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    count: int = code.co_argcount - (1 if getattr(fn, "__self__", None) is not None else 0)
    return count > 0


class ProtocolMismatchError(Exception):
    """`init` says another protocol version than this SDK speaks: the runner cannot run the agent."""

    def __init__(self, received: object) -> None:
        version = "none" if received is None else repr(received)[:40]
        super().__init__(
            f"agent protocol mismatch: the host speaks version {version}, {SDK_VERSION} speaks version "
            f"{AGENT_PROTOCOL_VERSION}; run the agent with the SDK of its coordinator's version"
        )


def agent_error(error: BaseException) -> AgentError:
    import traceback

    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return {"message": message, "stack": "".join(traceback.format_exception(error))}


def load_entry(path: str) -> ModuleType:
    """Imports the entry file as a module named after it (its directory is already on sys.path)."""
    import _frozen_importlib
    import _frozen_importlib_external

    filename = path.rpartition("/")[2]
    name = filename[:-3] if filename.endswith(".py") else filename
    if not name.isidentifier() or name in sys.modules:
        name = "podium_entry"
    spec = _frozen_importlib_external.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = _frozen_importlib.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class Runtime:
    def __init__(self, entry: str | None, writer: FrameWriter) -> None:
        self.entry = entry
        self.writer = writer
        self.inbox: _queue.SimpleQueue[JsonObject] = _queue.SimpleQueue()
        self.requests = PendingRequests()
        # ctx.ask() / request_permission() called inside a running event loop: said in the log once.
        self.warned_blocking = False
        self.tracker: StateTracker | None = None
        self.info = AgentInfo("", "", "", "", {})  # replaced from init before any hook runs
        self.current: TurnControl | None = None
        self.stopping = False
        self.last_turn = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: Callable[[], object] | None = None
        self._wakeup: asyncio.Event | None = None

    # ---- reader thread ----

    def _on_frame(self, frame: JsonObject) -> None:
        kind = frame["type"]
        if kind == "cancel":
            control = self.current
            if control is not None and control.turn == frame.get("turn"):
                control.cancelled = True
                self.requests.cancel(control, "turn was cancelled")
            return
        if kind == "answer":
            request_id = frame.get("id")
            if type(request_id) is not str or not self.requests.answer(request_id, frame.get("value")):
                self.log("debug", (f"answer for unknown request {request_id!r}",), None)
            return
        if kind == "stop":
            if not self.stopping:
                grace = frame.get("graceMs")
                grace_ms = grace if (type(grace) is int or type(grace) is float) and grace >= 0 else _EOF_GRACE_MS
                _thread.start_new_thread(_watchdog, (grace_ms / 1000,))
            self.stopping = True
            control = self.current
            if control is not None:
                control.cancelled = True
            self.requests.cancel(None, "agent is stopping")
        elif kind not in ("init", "message"):
            self.log("warn", (f"dropped host frame of unknown type {kind!r}",), None)
            return
        self.inbox.put(frame)
        wake = self._wake
        if wake is not None:
            try:
                wake()
            except RuntimeError:  # loop closed
                pass

    def _on_eof(self) -> None:
        self._on_frame({"type": "stop", "graceMs": _EOF_GRACE_MS})

    def _on_bad_line(self, reason: str) -> None:
        self.log("warn", (f"dropped host frame: {reason}",), None)

    # ---- frames out ----

    def log(self, level: str, args: tuple[object, ...], turn: int | None) -> None:
        message = " ".join(a if type(a) is str else str(a) for a in args)
        frame: JsonObject = {"type": "log", "level": level, "message": message}
        if turn is not None:
            frame["fields"] = {"turn": turn}
        try:
            self.writer.write(frame)
        except FrameChannelClosed:
            pass

    def flush(self, turn: int) -> None:
        parts = self.tracker.take_op_parts() if self.tracker is not None else None
        if parts is not None:
            self.writer.write_parts(['{"type":"state_patch","turn":%d,"ops":' % turn, *parts, "}\n"])

    def fatal(self, error: BaseException) -> int:
        detail = agent_error(error)
        sys.stderr.write(f"podium runner: {detail['stack']}")
        try:
            fatal: FatalFrame = {"type": "fatal", "error": detail}
            self.writer.write(fatal)
        except FrameChannelClosed:
            pass
        return 1

    # ---- life cycle ----

    def run(self) -> int:
        start_reader(self._on_frame, self._on_bad_line, self._on_eof)
        if self.entry is None:
            # A warm runner imports now what its init needs (os: ~2 ms, most of init -> ready), then tells
            # the coordinator's pool that it waits for init.
            import os  # noqa: F401

            try:
                self.writer.write({"type": "waiting"})
            except FrameChannelClosed:
                return 1
        init = self.inbox.get()
        while init["type"] != "init":
            if init["type"] == "stop":  # stopped (or EOF) before init: nothing to run on_stop for
                try:
                    self.writer.write({"type": "stopped"})
                except FrameChannelClosed:
                    pass
                return 0
            init = self.inbox.get()
        # A host of another protocol version: nothing this runner would do can be trusted to mean the same.
        protocol = init.get("protocol")
        if type(protocol) is not int or protocol != AGENT_PROTOCOL_VERSION:
            return self.fatal(ProtocolMismatchError(protocol))
        # environment + secrets reach the agent only here, inside its sandbox, before its module runs
        # (module-level code may read os.environ); never through the environment of a host process.
        env = init.get("env")
        deployment = init.get("deploymentId")
        if (type(env) is dict and env) or self.entry is None:
            import os  # not loaded by `python3 -I -S` until needed

            # A warm runner was spawned before its deployment was known: the platform's variable comes from init.
            if type(deployment) is str and deployment:
                os.environ.setdefault("PODIUM_DEPLOYMENT_ID", deployment)
            if type(env) is dict:
                os.environ.update({k: v for k, v in env.items() if type(k) is str and type(v) is str})
        entry = self.entry
        if entry is None:  # a warm runner: the entry comes with init
            named = init.get("entry")
            if type(named) is not str or not named.startswith("/"):
                return self.fatal(ValueError("no entry module: pass it as the runner's argument or in init.entry"))
            entry = self.entry = named
            sys.path.insert(1, entry.rpartition("/")[0] or "/")
        try:
            module = load_entry(entry)
            hooks = self._hooks(module)
        except BaseException as error:  # includes SyntaxError and SystemExit at import time
            return self.fatal(error)
        if any(_is_async(fn) for fn in hooks.values() if fn is not None):
            import asyncio

            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            return self.loop.run_until_complete(self._life(init, hooks, self._next_async, self._call_async))
        return _drive(self._life(init, hooks, self._next_sync, self._call_sync))

    def _hooks(self, module: ModuleType) -> Hooks:
        on_message = getattr(module, "on_message", None)
        if not callable(on_message):
            raise TypeError(f"{self.entry} must define on_message(ctx, message)")
        hooks: Hooks = {"on_message": on_message}
        for name in ("on_start", "on_stop", "on_hibernate"):
            hook = getattr(module, name, None)
            if hook is not None and not callable(hook):
                raise TypeError(f"{self.entry}: {name} must be a function")
            hooks[name] = hook
        hooks["initial_state"] = getattr(module, "initial_state", None)
        return hooks

    # ---- the life cycle, written once ----
    # Sync agents: _life is driven by _drive() without an event loop (next_frame blocks on the
    # inbox, call() runs the hook directly). Async agents: _life runs on an asyncio loop that keeps
    # running between turns, so tasks started by a handler make progress.

    async def _life(self, init: JsonObject, hooks: Hooks, next_frame: Callable[[], Awaitable[JsonObject]], call: Call) -> int:
        try:
            self.info = _make_info(init)
            fresh = init.get("stateVersion", 0) == 0
            self._begin_state(init, await call(self._initial, hooks["initial_state"]) if fresh else None)
            if hooks["on_start"] is not None:
                await call(hooks["on_start"], self._context(0))
                self.flush(0)
            ready: ReadyFrame = {"type": "ready", "protocol": AGENT_PROTOCOL_VERSION, "runtime": "python", "sdk": SDK_VERSION}
            self.writer.write(ready)
        except Exception as error:
            return self.fatal(error)
        while True:
            frame = await next_frame()
            kind = frame["type"]
            if kind == "stop":
                hibernate = frame.get("hibernate") is True
                break
            if kind != "message" or self.stopping:
                continue
            turn = frame.get("turn")
            if type(turn) is not int or turn < 0:
                self.log("warn", ("dropped message frame without a valid turn",), None)
                continue
            content = frame.get("content")
            traceparent, tracestate = frame.get("traceparent"), frame.get("tracestate")
            control = TurnControl(turn, traceparent if type(traceparent) is str and traceparent else None, tracestate if type(tracestate) is str and tracestate else None)
            self.current = control
            control.cancelled = self.stopping  # a stop that raced with the start of this turn
            self.last_turn = turn
            failure = None
            try:
                await call(hooks["on_message"], AgentContext(self, control), content if type(content) is dict else {})
            except Exception as caught:
                failure = caught
            self._finish_turn(control, failure)
        # A hibernating instance runs on_hibernate instead: a later process resumes it from its state.
        last = "on_hibernate" if hibernate else "on_stop"
        if hooks[last] is not None:
            try:
                await call(hooks[last], self._context(self.last_turn))
            except Exception as error:
                self.log("error", (f"{last} failed:", repr(error)), None)
        self.flush(self.last_turn)
        self.writer.write({"type": "stopped"})
        return 0

    async def _next_sync(self) -> JsonObject:
        return self.inbox.get()

    async def _call_sync(self, fn: Callable[..., Any], *args: object) -> Any:
        result = fn(*args)
        if hasattr(result, "__await__"):  # a sync hook that returned an awaitable
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
            result = self.loop.run_until_complete(result)
        return result

    async def _next_async(self) -> JsonObject:
        import asyncio

        wakeup = self._wakeup
        if wakeup is None:
            wakeup = self._wakeup = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._wake = lambda: loop.call_soon_threadsafe(wakeup.set)
        while True:
            try:
                return self.inbox.get_nowait()
            except _queue.Empty:
                pass
            await wakeup.wait()
            wakeup.clear()

    async def _call_async(self, fn: Callable[..., Any], *args: object) -> Any:
        result = fn(*args)
        if hasattr(result, "__await__"):
            result = await result
        return result

    def _initial(self, initial: object) -> object:
        if not callable(initial):
            return initial
        return initial(self.info) if _takes_argument(initial) else initial()

    def _context(self, turn: int) -> AgentContext:
        return AgentContext(self, TurnControl(turn))

    def _begin_state(self, init: JsonObject, initial: object) -> None:
        state = init.get("state")
        if type(state) is not dict:
            state = {}
        if init.get("stateVersion", 0) != 0:
            self.tracker = StateTracker(state)
            return
        self.tracker = StateTracker({})
        if initial is not None:
            self.tracker.replace(initial)
        else:  # init.state was just decoded and is ours: no copy needed
            self.tracker.replace(state, owned=True)
        self.flush(0)

    def _finish_turn(self, control: TurnControl, error: Exception | None) -> None:
        self.current = None
        self.flush(control.turn)
        done: TurnDoneFrame = {"type": "turn_done", "turn": control.turn}
        if error is not None and not (control.cancelled and isinstance(error, Cancelled)):
            done["error"] = agent_error(error)
        self.writer.write(done)


def _make_info(init: JsonObject) -> AgentInfo:
    def text(key: str) -> str:
        value = init.get(key)
        return value if type(value) is str else ""

    env = init.get("env")
    return AgentInfo(text("instanceId"), text("agentId"), text("deploymentId"), text("workspace"), {k: v for k, v in env.items() if type(v) is str} if type(env) is dict else {})


def _drive(coroutine: Coroutine[Any, Any, int]) -> int:
    """Runs a coroutine that never suspends (the sync life cycle) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        value: int = done.value
        return value
    coroutine.close()
    raise RuntimeError("the sync life cycle must not await real awaitables")


def _flush_quietly(writer: FrameWriter) -> None:
    try:
        writer.flush()
    except (FrameChannelClosed, OSError):
        pass


def main(argv: list[str]) -> int:

    """argv: [entry file], or [] for a warm runner whose entry comes with init."""
    for stream in (sys.stdout, sys.stderr):
        try:
            getattr(stream, "reconfigure")(line_buffering=True)

        except (AttributeError, ValueError):
            pass
    writer = FrameWriter()
    runtime = Runtime(argv[0] if argv else None, writer)
    # Events batched in the last moments go out when agent code ends the process with sys.exit().
    atexit.register(_flush_quietly, writer)
    try:
        return runtime.run()
    except FrameChannelClosed:
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
