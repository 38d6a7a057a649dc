"""The runner's life cycle (services/coordinator/agent-protocol.ts): init -> load state -> on_start
-> ready -> one turn at a time -> stop/EOF -> on_stop -> stopped.

A reader thread handles cancel / answer as they arrive and queues init / message / stop for the
main thread. Handlers may be plain functions or `async def`; asyncio is imported only when the
entry module has a coroutine handler (or a handler returns an awaitable).
"""

import _queue
import sys

from .context import AgentContext, AgentInfo, Cancelled, PendingRequests, TurnControl
from .frames import FrameChannelClosed, FrameWriter, start_reader
from .tracked_state import StateTracker

SDK_VERSION = "podium-py/0.1.0"
_ASYNC_FLAGS = 0x80 | 0x100  # CO_COROUTINE | CO_ITERABLE_COROUTINE
_EOF_GRACE_MS = 5000


def _is_async(fn):
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & _ASYNC_FLAGS)


def _takes_argument(fn):
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    count = code.co_argcount - (1 if getattr(fn, "__self__", None) is not None else 0)
    return count > 0


def agent_error(error):
    import traceback

    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return {"message": message, "stack": "".join(traceback.format_exception(error))}


def load_entry(path):
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
    def __init__(self, entry, writer):
        self.entry = entry
        self.writer = writer
        self.inbox = _queue.SimpleQueue()
        self.requests = PendingRequests()
        self.tracker = None
        self.info = None
        self.current = None
        self.stopping = False
        self.last_turn = 0
        self.loop = None
        self._wake = None

    # ---- reader thread ----

    def _on_frame(self, frame):
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

    def _on_eof(self):
        self._on_frame({"type": "stop", "graceMs": _EOF_GRACE_MS})

    def _on_bad_line(self, reason):
        self.log("warn", (f"dropped host frame: {reason}",), None)

    # ---- frames out ----

    def log(self, level, args, turn):
        message = " ".join(a if type(a) is str else str(a) for a in args)
        frame = {"type": "log", "level": level, "message": message}
        if turn is not None:
            frame["fields"] = {"turn": turn}
        try:
            self.writer.write(frame)
        except FrameChannelClosed:
            pass

    def flush(self, turn):
        parts = self.tracker.take_op_parts() if self.tracker is not None else None
        if parts is not None:
            self.writer.write_parts(['{"type":"state_patch","turn":%d,"ops":' % turn, *parts, "}\n"])

    def fatal(self, error):
        detail = agent_error(error)
        sys.stderr.write(f"podium runner: {detail['stack']}")
        try:
            self.writer.write({"type": "fatal", "error": detail})
        except FrameChannelClosed:
            pass
        return 1

    # ---- life cycle ----

    def run(self):
        start_reader(self._on_frame, self._on_bad_line, self._on_eof)
        try:
            module = load_entry(self.entry)
            hooks = self._hooks(module)
        except BaseException as error:  # includes SyntaxError and SystemExit at import time
            return self.fatal(error)
        init = self.inbox.get()
        while init["type"] != "init":
            if init["type"] == "stop":  # stopped (or EOF) before init: nothing to run on_stop for
                try:
                    self.writer.write({"type": "stopped"})
                except FrameChannelClosed:
                    pass
                return 0
            init = self.inbox.get()
        if any(_is_async(fn) for fn in hooks.values() if fn is not None):
            import asyncio

            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            return self.loop.run_until_complete(self._run_async(init, hooks))
        return self._run_sync(init, hooks)

    def _hooks(self, module):
        on_message = getattr(module, "on_message", None)
        if not callable(on_message):
            raise TypeError(f"{self.entry} must define on_message(ctx, message)")
        hooks = {"on_message": on_message}
        for name in ("on_start", "on_stop"):
            hook = getattr(module, name, None)
            if hook is not None and not callable(hook):
                raise TypeError(f"{self.entry}: {name} must be a function")
            hooks[name] = hook
        initial = getattr(module, "initial_state", None)
        hooks["initial_state"] = initial if callable(initial) else None
        hooks["initial_value"] = None if callable(initial) else initial
        return hooks

    def _await(self, result):
        """Runs an awaitable returned by a handler in sync mode (on a lazily created loop)."""
        if not hasattr(result, "__await__"):
            return result
        if self.loop is None:
            import asyncio

            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(result)

    def _context(self, turn):
        return AgentContext(self, TurnControl(turn))

    @staticmethod
    def _make_info(init):
        env = init.get("env")
        return AgentInfo(init.get("instanceId", ""), init.get("agentId", ""), init.get("deploymentId", ""), init.get("workspace", ""), env if type(env) is dict else {})

    @staticmethod
    def _fresh(init):
        return init.get("stateVersion", 0) == 0

    def _begin_state(self, init, initial):
        state = init.get("state")
        if self._fresh(init):
            self.tracker = StateTracker({})
            if initial is not None:
                self.tracker.replace(initial)
            else:  # init.state was just decoded and is ours: no copy needed
                self.tracker.replace(state if type(state) is dict else {}, owned=True)
            self.flush(0)
        else:
            self.tracker = StateTracker(state if type(state) is dict else {})

    def _initial(self, hooks):
        fn = hooks["initial_state"]
        if fn is None:
            return hooks["initial_value"]
        return fn(self.info) if _takes_argument(fn) else fn()

    def _ready(self):
        self.writer.write({"type": "ready", "protocol": 1, "runtime": "python", "sdk": SDK_VERSION})

    def _message(self, frame):
        turn = frame.get("turn")
        if type(turn) is not int or turn < 0:
            self.log("warn", ("dropped message frame without a valid turn",), None)
            return None
        content = frame.get("content")
        return turn, content if type(content) is dict else {}

    def _finish_turn(self, control, error):
        self.current = None
        self.flush(control.turn)
        done = {"type": "turn_done", "turn": control.turn}
        if error is not None and not (control.cancelled and isinstance(error, Cancelled)):
            done["error"] = agent_error(error)
        self.writer.write(done)

    def _stopped(self):
        self.flush(self.last_turn)
        self.writer.write({"type": "stopped"})
        return 0

    # sync handlers: the main thread blocks on the inbox between turns

    def _run_sync(self, init, hooks):
        try:
            self.info = self._make_info(init)
            self._begin_state(init, self._await(self._initial(hooks)) if self._fresh(init) else None)
            if hooks["on_start"] is not None:
                self._await(hooks["on_start"](self._context(0)))
                self.flush(0)
            self._ready()
        except Exception as error:
            return self.fatal(error)
        while True:
            frame = self.inbox.get()
            kind = frame["type"]
            if kind == "stop":
                return self._stop_sync(hooks)
            if kind != "message" or self.stopping:
                continue
            parsed = self._message(frame)
            if parsed is None:
                continue
            control = TurnControl(parsed[0])
            self.current = control
            self.last_turn = control.turn
            error = None
            try:
                self._await(hooks["on_message"](AgentContext(self, control), parsed[1]))
            except Exception as caught:
                error = caught
            self._finish_turn(control, error)

    def _stop_sync(self, hooks):
        if hooks["on_stop"] is not None:
            try:
                self._await(hooks["on_stop"](self._context(self.last_turn)))
            except Exception as error:
                self.log("error", ("on_stop failed:", repr(error)), None)
        return self._stopped()

    # async handlers: everything runs on one event loop that keeps running between turns

    async def _next_frame(self, wakeup):
        while True:
            try:
                return self.inbox.get_nowait()
            except _queue.Empty:
                pass
            await wakeup.wait()
            wakeup.clear()

    async def _run_async(self, init, hooks):
        import asyncio

        wakeup = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._wake = lambda: loop.call_soon_threadsafe(wakeup.set)
        try:
            self.info = self._make_info(init)
            initial = None
            if self._fresh(init):
                initial = self._initial(hooks)
                if hasattr(initial, "__await__"):
                    initial = await initial
            self._begin_state(init, initial)
            if hooks["on_start"] is not None:
                result = hooks["on_start"](self._context(0))
                if hasattr(result, "__await__"):
                    await result
                self.flush(0)
            self._ready()
        except Exception as error:
            return self.fatal(error)
        while True:
            frame = await self._next_frame(wakeup)
            kind = frame["type"]
            if kind == "stop":
                break
            if kind != "message" or self.stopping:
                continue
            parsed = self._message(frame)
            if parsed is None:
                continue
            control = TurnControl(parsed[0])
            self.current = control
            self.last_turn = control.turn
            error = None
            try:
                result = hooks["on_message"](AgentContext(self, control), parsed[1])
                if hasattr(result, "__await__"):
                    await result
            except Exception as caught:
                error = caught
            self._finish_turn(control, error)
        if hooks["on_stop"] is not None:
            try:
                result = hooks["on_stop"](self._context(self.last_turn))
                if hasattr(result, "__await__"):
                    await result
            except Exception as error:
                self.log("error", ("on_stop failed:", repr(error)), None)
        return self._stopped()


def main(argv):
    if not argv:
        sys.stderr.write("usage: python3 -I -S podium_runner.py <entry file>\n")
        return 2
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    runtime = Runtime(argv[0], FrameWriter())
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
