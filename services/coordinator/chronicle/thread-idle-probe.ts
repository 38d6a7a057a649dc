/**
 * Tells, without waking it, whether a thread of this process is asleep in `epoll_wait`: reads
 * `/proc/self/task/<tid>/syscall`, which the kernel fills only for a thread that is blocked (not runnable)
 * for the whole read, and otherwise answers "running" (lib/syscall.c `task_current_syscall`, which checks
 * the thread's state and context-switch count before and after collecting). A libuv thread asleep in
 * `epoll_wait` has handled every event its file descriptors had: an event queued on one of them (an inotify
 * event is queued inside the syscall that causes it) makes the thread runnable at once.
 *
 * Used by workspace-watcher.ts to skip a turn's barrier when nothing touched the workspace. Any doubt (no
 * such file, an unexpected answer, another syscall) is "not idle": the caller runs the barrier as before.
 */
import fs from "node:fs";

/** epoll_wait, epoll_pwait, epoll_pwait2 by architecture (arm64 has no plain epoll_wait). */
const EPOLL_SYSCALLS: Readonly<Record<string, readonly number[]>> = {
  x64: [232, 281, 441],
  arm64: [22, 441],
};

export class ThreadIdleProbe {
  private readonly buffer = Buffer.alloc(64);
  private fd: number | undefined;

  private constructor(
    fd: number,
    private readonly epollCalls: readonly number[],
  ) {
    this.fd = fd;
  }

  /** A probe of thread `tid` of this process; undefined where the kernel or architecture cannot say. */
  static open(tid: number): ThreadIdleProbe | undefined {
    const epollCalls = EPOLL_SYSCALLS[process.arch];
    if (process.platform !== "linux" || !epollCalls || !Number.isSafeInteger(tid) || tid <= 0) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(`/proc/self/task/${tid}/syscall`, "r");
    } catch {
      return undefined;
    }
    return new ThreadIdleProbe(fd, epollCalls);
  }

  /** True when the thread was asleep in epoll_wait at one instant during this call (~2 µs). */
  sleepingInEpoll(): boolean {
    if (this.fd === undefined) return false;
    let length: number;
    try {
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

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
