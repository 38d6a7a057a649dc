/**
 * The short chaos run in `npm test` (issue 12; the long one is `npm run chaos`): 3 replicating coordinators,
 * 2 gateways, redis-server and s3rver as real processes, 8 clients with their own named agents, and
 * 40 s of faults (each kind at least once): kill -9 of agents and coordinators (restarted), Valkey restarted empty, S3 away for
 * 3 s. Every invariant of test/chaos/chaos-check.ts must hold.
 */
import { describe, it, expect } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { brokenInvariants } from "../chaos/chaos-check.js";
import { runChaos } from "../chaos/chaos-run.js";

describe("chaos run (short)", () => {
  it("loses, duplicates and reorders nothing acknowledged; streams match the agents' logs; no orphans; no live coordinator declared lost", async () => {
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-chaos-logs-"));
    const report = await runChaos({ clients: 8, durationMs: 40_000, faultEveryMs: 4000, logDir, log: (line) => process.stderr.write(`chaos: ${line}\n`) });
    console.log(`chaos run: ${JSON.stringify(report)}`);
    const broken = brokenInvariants(report);
    if (broken.length > 0) console.error(`chaos run: every process's output is in ${logDir}`);
    else fs.rmSync(logDir, { recursive: true, force: true });
    // Messages an `agent.restored` declared lost with their coordinator are counted apart (docs/runtime.md
    // "Delivery"); every invariant, silent losses included, must hold every time.
    expect(broken).toEqual([]);
    // Every kind of fault happened, and the clients got work done through them.
    expect(Object.values(report.faults).every((n) => n >= 1)).toBe(true);
    expect(report.delivery.ran).toBeGreaterThan(report.clients * 5);
  }, 400_000);
});
