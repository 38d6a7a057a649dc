import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import type { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import { ThreadIdleProbe } from "../../services/coordinator/chronicle/thread-idle-probe.js";
import { ChronicleFixture } from "./chronicle-test-utils.js";

// The skip needs the watch thread's state from /proc/<tid>/syscall (Linux, x64 or arm64).
const supported = process.platform === "linux" && (process.arch === "x64" || process.arch === "arm64");
const describeSupported = supported ? describe : describe.skip;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeSupported("a capture without barrier when nothing changed (WorkspaceWatcher.unchanged)", () => {
  let fx: ChronicleFixture;
  let chronicle: Chronicle;

  /** Captures until one is skipped: the watch thread is asleep and no file is racy any more. */
  async function settle(): Promise<void> {
    for (let i = 0; i < 200 && !chronicle.lastCaptureSkipped; i++) {
      await pause(20);
      expect(await chronicle.captureAsync()).toBeUndefined();
    }
    expect(chronicle.lastCaptureSkipped).toBe(true);
  }

  const changes = (result: Awaited<ReturnType<Chronicle["captureAsync"]>>) => (result?.files ?? []).map((f) => `${f.change} ${f.path}`);

  beforeEach(async () => {
    fx = new ChronicleFixture();
    fx.write("a.txt", "a");
    fx.write("dir/b.txt", "b");
    chronicle = fx.open();
    for (const until = Date.now() + 30_000; !chronicle.watchReady && Date.now() < until; ) await pause(20);
    expect(chronicle.capture()?.files).toHaveLength(2);
    await settle();
  });
  afterEach(() => fx.cleanup());

  it("captures a file written right before the turn's end, every time", async () => {
    for (let i = 0; i < 10; i++) {
      fx.write("a.txt", `a${i}`);
      const result = await chronicle.captureAsync();
      expect(chronicle.lastCaptureSkipped).toBe(false);
      expect(changes(result)).toEqual(["modified a.txt"]);
      expect(chronicle.read("a.txt").content).toBe(`a${i}`);
      await settle();
    }
  });

  it("captures what a child process wrote, created, renamed or deleted right before it exited", async () => {
    const steps: [string, string[]][] = [
      ["echo new > dir/c.txt", ["created dir/c.txt"]],
      ["mv dir/c.txt d.txt", ["created d.txt", "deleted dir/c.txt"]],
      ["mkdir -p e/f && echo deep > e/f/g.txt", ["created e/f/g.txt"]],
      ["rm -r dir", ["deleted dir/b.txt"]],
    ];
    for (const [command, expected] of steps) {
      execFileSync("sh", ["-c", command], { cwd: fx.workspace, stdio: "ignore" });
      const result = chronicle.capture();
      expect(chronicle.lastCaptureSkipped).toBe(false);
      expect(changes(result)).toEqual(expected);
      await settle();
    }
  });

  it("sees a replaced workspace root", async () => {
    fs.renameSync(fx.workspace, `${fx.workspace}-old`);
    fs.mkdirSync(fx.workspace);
    const result = await chronicle.captureAsync();
    expect(chronicle.lastCaptureSkipped).toBe(false);
    expect(chronicle.lastFullScanReason).toBe("workspace root replaced");
    expect(changes(result)).toEqual(["deleted a.txt", "deleted dir/b.txt"]);
  });

  it("reads a thread's state without waking it", () => {
    const probe = ThreadIdleProbe.open(Number(/\/task\/(\d+)$/.exec(fs.readlinkSync("/proc/thread-self"))?.[1]));
    expect(probe).toBeDefined();
    expect(probe?.sleepingInEpoll()).toBe(false); // this thread is running: it reads its own state
    probe?.close();
    expect(ThreadIdleProbe.open(-1)).toBeUndefined();
  });
});
