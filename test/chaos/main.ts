/**
 * `npm run chaos [-- --clients 50 --duration 120 --fault-every 4]`: the chaos run of issue 12 with its
 * figures. Exits 1 when an invariant broke (a message lost, duplicated or reordered, a stream with a gap,
 * a duplicate or an event the log does not have, an orphan agent, a live coordinator declared lost).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { brokenInvariants } from "./chaos-check.js";
import { runChaos } from "./chaos-run.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "50" },
    duration: { type: "string", default: "120" },
    "fault-every": { type: "string", default: "4" },
    "log-level": { type: "string", default: "info" },
  },
});

function number(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-chaos-logs-"));
const report = await runChaos({
  clients: number("clients", values.clients),
  durationMs: number("duration", values.duration) * 1000,
  faultEveryMs: number("fault-every", values["fault-every"]) * 1000,
  log: (line) => console.log(line),
  logLevel: values["log-level"],
  logDir,
});
console.log(`every process's output: ${logDir}`);
const { delivery, streams } = report;
console.log(`
chaos run: ${report.clients} clients, ${report.durationMs / 1000} s of faults
  faults injected       ${Object.entries(report.faults)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(", ")}
  messages acknowledged ${delivery.acked}: ran ${delivery.ran}, ended with an error saying why ${delivery.errored}
  messages lost         ${delivery.lost} (declared lost by agent.restored: ${delivery.announced})
  messages reordered    ${delivery.reordered}   ended twice ${delivery.duplicated}
  stream sessions       ${streams.sessions} (${streams.events} events): gaps ${streams.gaps}, duplicates/disorder ${streams.disorder}, not in the log ${streams.phantom} (cut by a declared restore: ${streams.phantomAnnounced})
  agents whose log could not be read ${report.unreadable.length}${report.unreadable.length ? ` (${report.unreadable.join(", ")})` : ""}
  coordinators crashed  ${report.crashed.length}${report.crashed.length ? ` (${report.crashed.join("; ")})` : ""}
  orphan agents         ${report.orphans}
  live coordinators declared lost ${report.wronglyLost.length}${report.wronglyLost.length ? ` (${report.wronglyLost.join("; ")})` : ""}
  longest client-visible outage ${(report.longestOutageMs / 1000).toFixed(1)} s
  instances started ${report.instancesStarted}; turns a client gave up waiting for ${report.turnsTimedOut}
  refused requests (retried) ${JSON.stringify(report.refusals)}
  why errored messages did not run ${JSON.stringify(delivery.errors)}`);
const broken = brokenInvariants(report);
if (broken.length > 0) {
  console.error(`\nINVARIANTS BROKEN: ${broken.join(", ")}`);
  process.exit(1);
}
console.log("\nall invariants held");
process.exit(0);
