/**
 * RunnerPool's policy with its make/discard injected (test/security/warm-runner.test.ts runs the real
 * thing in bubblewrap): it fills a runtime only once asked for, to its size, one runner at a time; a
 * claim is served from the pool and refilled after; a runner dying unclaimed is replaced; runners that
 * keep failing pause the refill; close discards every unclaimed runner.
 */
import { describe, expect, it } from "@jest/globals";
import { RunnerPool, type WarmRunner } from "../../services/coordinator/runner-pool.js";
import type { AgentProcess, ProcessExitInfo } from "../../services/coordinator/agent-process.js";
import type { AgentRuntime } from "../../services/coordinator/runtime-commands.js";
import { silentLogger } from "../../services/shared/logger.js";
import { parseWarmRunners } from "../../services/coordinator/runner-pool.js";

interface FakeRunner extends WarmRunner {
  die(): void;
}

function fakeRunner(runtime: AgentRuntime, n: number): FakeRunner {
  let exit: (info: ProcessExitInfo) => void = () => undefined;
  const exited = new Promise<ProcessExitInfo>((resolve) => (exit = resolve));
  return { runtime, agentId: `agent-${n}`, instanceId: `inst-${n}`, process: { exited } as unknown as AgentProcess, die: () => exit({ code: 1, signal: null }) };
}

function harness(size: number, fail: (n: number) => boolean = () => false) {
  let made = 0;
  let inFlight = 0;
  let mostInFlight = 0;
  const discarded: string[] = [];
  const pool = new RunnerPool<FakeRunner>({
    size,
    logger: silentLogger,
    async make(runtime) {
      const n = ++made;
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      if (fail(n)) throw new Error(`runner ${n} failed`);
      return fakeRunner(runtime, n);
    },
    async discard(runner) {
      discarded.push(runner.agentId);
    },
  });
  return { pool, discarded, made: () => made, mostInFlight: () => mostInFlight };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("RunnerPool", () => {
  it("fills a runtime only once it was asked for, to its size, one runner at a time", async () => {
    const { pool, made, mostInFlight } = harness(2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(made()).toBe(0);
    expect(pool.take("python")).toBeUndefined(); // the first create starts cold, and starts the pool
    pool.refill();
    await until(() => pool.stats().ready.python === 2, "two python runners");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(made()).toBe(2);
    expect(mostInFlight()).toBe(1);
    expect(pool.stats()).toEqual({ ready: { typescript: 0, python: 2 }, claims: 0, misses: 1, died: 0 });
    await pool.close();
  });

  it("serves claims from the pool and refills after them", async () => {
    const { pool } = harness(2);
    pool.warm("typescript");
    await until(() => pool.stats().ready.typescript === 2, "two runners");
    const a = pool.take("typescript");
    const b = pool.take("typescript");
    expect(a?.agentId).not.toBe(b?.agentId);
    expect(pool.take("typescript")).toBeUndefined();
    expect(pool.stats()).toMatchObject({ claims: 2, misses: 1 });
    pool.refill();
    await until(() => pool.stats().ready.typescript === 2, "the refill");
    await pool.close();
  });

  it("replaces a runner that died unclaimed, and discards it", async () => {
    const { pool, discarded } = harness(1);
    pool.warm("python");
    await until(() => pool.stats().ready.python === 1, "a runner");
    const first = pool.take("python");
    expect(first).toBeDefined();
    pool.refill();
    await until(() => pool.stats().ready.python === 1, "its replacement");
    // A claimed runner dying is its instance's business, not the pool's.
    first?.die();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(discarded).toEqual([]);
    expect(pool.stats().died).toBe(0);
    await pool.close();
    expect(discarded).toHaveLength(1);
  });

  it("pauses the refill of a runtime whose runners keep failing; the others keep theirs", async () => {
    const { pool, made } = harness(1, (n) => n <= 3);
    pool.warm("python");
    await until(() => made() === 3, "three failed attempts");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(made()).toBe(3); // paused (30 s), not retrying in a loop
    expect(pool.stats().ready.python).toBe(0);
    pool.warm("typescript");
    await until(() => pool.stats().ready.typescript === 1, "a typescript runner");
    await pool.close();
  });

  it("close discards every unclaimed runner and makes no more", async () => {
    const { pool, discarded, made } = harness(3);
    pool.warm("python");
    pool.warm("typescript");
    await until(() => pool.stats().ready.python + pool.stats().ready.typescript === 6, "six runners");
    const claimed = pool.take("python");
    await pool.close();
    expect(discarded.sort()).toHaveLength(5);
    expect(discarded).not.toContain(claimed?.agentId);
    const count = made();
    pool.refill();
    pool.warm("python");
    expect(pool.take("python")).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(made()).toBe(count);
  });

  it("size 0 disables it", async () => {
    const { pool, made } = harness(0);
    pool.warm("python");
    expect(pool.take("python")).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(made()).toBe(0);
    expect(pool.enabled).toBe(false);
    await pool.close();
  });

  it("--warm-runners / PODIUM_WARM_RUNNERS takes 0..64 and names what it got otherwise", () => {
    expect(parseWarmRunners(undefined)).toBeUndefined();
    expect(parseWarmRunners("")).toBeUndefined();
    expect(parseWarmRunners("0")).toBe(0);
    expect(parseWarmRunners("8")).toBe(8);
    for (const bad of ["-1", "65", "2.5", "two"]) expect(() => parseWarmRunners(bad)).toThrow(`--warm-runners must be an integer 0..64, got ${bad}`);
  });
});
