"""Podium Python agent runner. Spawned by the coordinator as

    python3 -I -S sdk/python/podium_runner.py <absolute entry path>

or, as a warm runner started before anyone asked for it, without the entry: `init.entry` names it.

with cwd = workspace, fd 0 = host -> agent NDJSON, fd 1/2 = logs, fd 3 = agent -> host NDJSON.
Puts this directory (for podium_agent) and the entry's directory on sys.path. Stdlib only; no
`os` import here (it costs ~2 ms of start-up): paths are handled as strings.
"""

import posix
import sys


def _absolute(path):
    return path if path.startswith("/") else posix.getcwd() + "/" + path


def _dirname(path):
    return path.rpartition("/")[0] or "/"


if __name__ == "__main__":
    entry = _absolute(sys.argv[1]) if len(sys.argv) > 1 else None
    sys.path[0:0] = [_dirname(_absolute(__file__))] + ([_dirname(entry)] if entry else [])
    from podium_agent.runner import main

    sys.exit(main([entry] if entry else []))
