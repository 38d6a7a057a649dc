"""`python -m podium_agent <entry.py>` (or the `podium-agent-runner` command of the installed
package): the agent runner, as sdk/python/podium_runner.py is in a checkout.

cwd = workspace, fd 0 = host -> agent NDJSON, fd 1/2 = logs, fd 3 = agent -> host NDJSON
(services/coordinator/agent-protocol.ts). Without an entry it is a warm runner: `init.entry` names it.
"""

from __future__ import annotations

import posix
import sys

_USAGE = """usage: python -m podium_agent [ENTRY.py]

Runs a Podium agent for a host that writes NDJSON frames to its stdin and reads the agent's frames
from fd 3; the Podium coordinator starts it. fd 3 is not open here. To try an agent by hand, run
`npx tsx test/sdk/run-agent.ts <agent dir> "hello"` in a Podium checkout, or deploy it to Podium.
"""


def run(argv: list[str] | None = None) -> int:
    """Runs the agent named by argv[0] (default: sys.argv[1:]); returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(_USAGE)
        return 0
    try:
        posix.fstat(3)
    except OSError:
        sys.stderr.write(_USAGE)
        return 2
    entry = args[0] if args else None
    if entry is not None:
        if not entry.startswith("/"):
            entry = posix.getcwd() + "/" + entry
        sys.path.insert(0, entry.rpartition("/")[0] or "/")  # the agent imports its own modules
    from .runner import main

    return main([entry] if entry is not None else [])


if __name__ == "__main__":
    sys.exit(run())
