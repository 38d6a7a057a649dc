"""Unit-test a Python agent with the standard library's unittest (or pytest): the agent runs in its
real runner process (the one Podium starts, without the sandbox), one call per turn.

    from podium_agent.testing import start_agent

    class AgentTest(unittest.TestCase):
        def test_echo(self):
            with start_agent("agent.py") as agent:
                turn = agent.send({"text": "hello"})
                self.assertEqual(turn.text, "hello")            # the turn's stream_update text
                self.assertEqual(agent.state(), {"turns": 1})   # ctx.state after the turn

`turn.events` has the turn's events in order (`message_type`, `content`); `turn.error` is the
message of an exception the handler raised (the agent keeps serving). A turn whose handler calls
`ctx.ask` / `ctx.request_permission` (an event with `request_id`) needs `answer`: a function of that
event returning the value the handler gets, e.g. `agent.send({...}, answer=lambda event: "yes")`. To test an agent deployed on
a real Podium (sandbox, workspace history, the platform's own events), use the TypeScript harness
`@podium-agents/testing` (packages/testing). Frames: services/coordinator/agent-protocol.ts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .protocol import AGENT_PROTOCOL_VERSION

_SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs the runner as `python3 -I -S sdk/python/podium_runner.py ENTRY` does, with fd 3 for frames.
_BOOT = (
    "import posix, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    posix.dup2(fd, 3)\n"
    "    posix.close(fd)\n"
    "sys.path[0:0] = [sys.argv[2], sys.argv[3].rpartition('/')[0] or '/']\n"
    "from podium_agent.runner import main\n"
    "sys.exit(main([sys.argv[3]]))\n"
)


class AgentFailed(Exception):
    """The agent could not start (its module failed to import, on_start raised) or exited."""


@dataclass
class Event:
    message_type: str
    content: dict[str, Any] | None = None


@dataclass
class TurnResult:
    #: Every event the agent sent in the turn, in order.
    events: list[Event] = field(default_factory=list)
    #: The concatenated `text` of the turn's stream_update / update events.
    text: str = ""
    #: "Type: message" of the exception the handler raised, if it did.
    error: str | None = None


def _apply(state: Any, op: dict[str, Any]) -> Any:
    """Applies one RFC 6902 add / remove / replace op (as the SDKs send them) and returns the state."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in str(op["path"]).split("/")[1:]]
    if not tokens:
        return op.get("value")
    parent = state
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    last = tokens[-1]
    if isinstance(parent, list):
        index = int(last)
        if op["op"] == "add":
            parent.insert(index, op["value"])
        elif op["op"] == "remove":
            del parent[index]
        else:
            parent[index] = op["value"]
    elif op["op"] == "remove":
        del parent[last]
    else:
        parent[last] = op["value"]
    return state


class LocalAgent:
    """One agent process; see start_agent. Close it (or use `with`): it stops the agent."""

    def __init__(self, entry: str, *, env: dict[str, str] | None = None, state: dict[str, Any] | None = None, workspace: str | None = None) -> None:
        self.entry = os.path.abspath(entry)
        if not os.path.isfile(self.entry):
            raise FileNotFoundError(f"no agent entry at {self.entry}")
        self._owns_workspace = workspace is None
        self.workspace = workspace if workspace is not None else tempfile.mkdtemp(prefix="podium-agent-test-")
        self._state: Any = json.loads(json.dumps(state)) if state is not None else {}
        self._frames: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._turn = 0
        read_fd, write_fd = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT, str(write_fd), _SDK_DIR, self.entry],
            cwd=self.workspace,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})},
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self._reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
        self._reader.start()
        name = os.path.basename(os.path.dirname(self.entry)) or "agent"
        init = {
            "type": "init", "protocol": AGENT_PROTOCOL_VERSION, "instanceId": "test-instance", "agentId": "test-agent",
            "deploymentId": f"{name}:test@local", "workspace": self.workspace, "env": env or {},
            "state": self._state if state is not None else {}, "stateVersion": 1 if state is not None else 0,
        }
        self._write(init)
        ready = self._wait(lambda f: f["type"] in ("ready", "fatal"), 30.0, "ready")
        if ready["type"] == "fatal":
            self.close()
            raise AgentFailed(str(ready.get("error", {}).get("message", ready)))

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as frames:
            for line in frames:
                frame = json.loads(line)
                with self._changed:
                    if frame.get("type") == "state_patch":
                        for op in frame.get("ops", []):
                            self._state = _apply(self._state, op)
                    self._frames.append(frame)
                    self._changed.notify_all()
        with self._changed:
            self._frames.append({"type": "_closed"})
            self._changed.notify_all()

    def _write(self, frame: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(frame).encode() + b"\n")
        self._process.stdin.flush()

    def _wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str, start: int = 0) -> dict[str, Any]:
        with self._changed:
            seen = start
            while True:
                for frame in self._frames[seen:]:
                    if match(frame):
                        return frame
                    if frame["type"] == "_closed":
                        raise AgentFailed(f"the agent exited (code {self._process.poll()}) before {what}")
                seen = len(self._frames)
                if not self._changed.wait(timeout):
                    raise TimeoutError(f"no {what} within {timeout} s")

    def send(self, content: dict[str, Any], timeout: float = 30.0, answer: Callable[[Event], Any] | None = None) -> TurnResult:
        """Runs one turn with this message content and returns what the agent sent in it.

        `answer(event)` answers the turn's requests (ctx.ask, ctx.request_permission): its return value is
        what the handler gets. A request without `answer` raises AgentFailed instead of waiting.
        """
        self._turn += 1
        turn = self._turn
        with self._changed:
            start = len(self._frames)
        self._write({"type": "message", "turn": turn, "content": content})

        def is_request(frame: dict[str, Any]) -> bool:
            return frame["type"] == "event" and frame.get("turn") == turn and isinstance(frame.get("content"), dict) and "request_id" in frame["content"]

        seen = start
        while True:
            done = self._wait(lambda f: (f["type"] == "turn_done" and f.get("turn") == turn) or is_request(f), timeout, f"end of turn {turn}", seen)
            if done["type"] == "turn_done":
                break
            with self._changed:
                seen = next(i for i in range(seen, len(self._frames)) if self._frames[i] is done) + 1
            request = Event(done["messageType"], done["content"])
            if answer is None:
                self._write({"type": "cancel", "turn": turn})
                raise AgentFailed(f"turn {turn} sent {request.message_type} and waits for an answer: pass answer= to send()")
            self._write({"type": "answer", "id": done["content"]["request_id"], "value": answer(request)})
        with self._changed:
            frames = self._frames[start:]
        events = [Event(f["messageType"], f.get("content")) for f in frames if f["type"] == "event" and f.get("turn") == turn]
        text = "".join(str((e.content or {}).get("text", "")) for e in events if e.message_type in ("stream_update", "update"))
        error = done.get("error")
        return TurnResult(events, text, str(error.get("message")) if isinstance(error, dict) else None)

    def state(self) -> Any:
        """ctx.state as of the last turn: a detached copy."""
        with self._changed:
            return json.loads(json.dumps(self._state))

    def close(self) -> None:
        """Stops the agent (on_stop runs) and removes the temporary workspace."""
        if self._process.poll() is None:
            try:
                self._write({"type": "stop", "graceMs": 5000})
                assert self._process.stdin is not None
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        if self._owns_workspace:
            shutil.rmtree(self.workspace, ignore_errors=True)

    def __enter__(self) -> LocalAgent:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()


def start_agent(entry: str, *, env: dict[str, str] | None = None, state: dict[str, Any] | None = None, workspace: str | None = None) -> LocalAgent:
    """Starts the agent in `entry` (e.g. "agent.py") and waits until it is ready.

    `env`: its environment (ctx.env); `state`: resume from this state instead of initial_state;
    `workspace`: its working directory (default: a temporary directory removed by close()).
    """
    return LocalAgent(entry, env=env, state=state, workspace=workspace)
