/**
 * Tells, without waking it, whether a thread of this process is asleep in `epoll_wait`, in two reads:
 * 1. `/proc/self/task/<tid>/stat` must say `S` (interruptible sleep). A thread that an event has woken but
 *    that has not run yet is `TASK_WAKING` (or runnable): `stat` reports that as `R`, while its registers,
 *    which `syscall` reads, still show the `epoll_wait` it went to sleep in. Waking is set inside the
 *    syscall that queues the event (an inotify event is queued in the writer's own write or close), so `S`
 *    read after that syscall returned means no event queued before it is still pending.
 * 2. `/proc/self/task/<tid>/syscall` must name `epoll_wait`: the kernel fills it only for a thread that stays
 *    blocked for the whole read (lib/syscall.c `task_current_syscall`), else it answers "running". Read after
 *    (1), it shows the thread went (back) to sleep with nothing to handle.
 * A libuv thread asleep in `epoll_wait` has handled every event its file descriptors had.
 *
 * Used by workspace-watcher.ts to skip a turn's barrier when nothing touched the workspace. Any doubt (no
 * such file, an unexpected answer, another state or syscall) is "not idle": the caller runs the barrier.
 */
import fs from "node:fs";

/** epoll_wait, epoll_pwait, epoll_pwait2 by architecture (arm64 has no plain epoll_wait). */
const EPOLL_SYSCALLS: Readonly<Record<string, readonly number[]>> = {
  x64: [232, 281, 441],
  arm64: [22, 441],
};

export class ThreadIdleProbe {
  private readonly buffer = Buffer.alloc(128);
  private fd: number | undefined;
  private statFd: number | undefined;

  private constructor(
    statFd: number,
    fd: number,
    private readonly epollCalls: readonly number[],
  ) {
    this.statFd = statFd;
    this.fd = fd;
  }

  /** A probe of thread `tid` of this process; undefined where the kernel or architecture cannot say. */
  static open(tid: number): ThreadIdleProbe | undefined {
    const epollCalls = EPOLL_SYSCALLS[process.arch];
    if (process.platform !== "linux" || !epollCalls || !Number.isSafeInteger(tid) || tid <= 0) return undefined;
    let statFd: number | undefined;
    try {
      statFd = fs.openSync(`/proc/self/task/${tid}/stat`, "r");
      return new ThreadIdleProbe(statFd, fs.openSync(`/proc/self/task/${tid}/syscall`, "r"), epollCalls);
    } catch {
      if (statFd !== undefined) fs.closeSync(statFd);
      return undefined;
    }
  }

  /** True when the thread was asleep in epoll_wait at one instant during this call (~2 µs). */
  sleepingInEpoll(): boolean {
    if (this.fd === undefined || this.statFd === undefined) return false;
    let length: number;
    try {
      if (!this.asleep(fs.readSync(this.statFd, this.buffer, 0, this.buffer.length, 0))) return false;
      length = fs.readSync(this.fd, this.buffer, 0, this.buffer.length, 0);
    } catch {
      this.close(); // the thread is gone: never idle again
      return false;
    }
    let nr = 0;
    let i = 0;
    for (; i < length; i++) {
      const c = this.buffer[i] as number;
      if (c < 48 || c > 57) break;
      nr = nr * 10 + c - 48;
    }
    return i > 0 && this.buffer[i] === 32 && this.epollCalls.includes(nr);
  }

  /** `stat`'s state field (after the command name's last `)`) is `S`. */
  private asleep(length: number): boolean {
    const end = this.buffer.lastIndexOf(41, length - 1); // ")"
    return end > 0 && end + 2 < length && this.buffer[end + 2] === 83; // "S"
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    if (this.statFd !== undefined) fs.closeSync(this.statFd);
    this.fd = undefined;
    this.statFd = undefined;
  }
}
