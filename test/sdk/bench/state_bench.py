"""ops/s of the Python SDK's state tracking: python3 -I -S test/sdk/bench/state_bench.py [N]

Prints one JSON line per workload; ops are flushed (serialized) every 1000 mutations, like turns.
"""

import sys
import time

HERE = __file__.rpartition("/")[0] or "."
sys.path.insert(0, HERE + "/../../../sdk/python")

from podium_agent.json_value import encode  # noqa: E402
from podium_agent.tracked_state import StateTracker  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
FLUSH_EVERY = 1000


def timed(state, body, flush):
    started = time.perf_counter()
    for i in range(N):
        body(state, i)
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            flush()
    flush()
    return time.perf_counter() - started


def run(name, setup, body):
    tracker = StateTracker(setup())
    seconds = timed(tracker.root, body, tracker.take_ops)
    plain = timed(setup(), body, lambda: None)
    print(encode({"runtime": "python", "workload": name, "opsPerSec": round(N / seconds), "plainOpsPerSec": round(N / plain)}))


def counter(s, i):
    s["n"] += 1


def nested(s, i):
    s["a"]["b"]["c"] = i


def push(s, i):
    s["list"].append(i)


def new_key(s, i):
    s["map"][f"k{i}"] = {"x": i, "tags": ["a"]}


def read(s, i):
    if s["a"]["b"]["c"] != 1:
        raise AssertionError


run("counter += 1", lambda: {"n": 0}, counter)
run("nested set a.b.c = i", lambda: {"a": {"b": {"c": 0}}}, nested)
run("array push", lambda: {"list": []}, push)
run("new key with object value", lambda: {"map": {}}, new_key)
run("read nested (no mutation)", lambda: {"a": {"b": {"c": 1}}}, read)
