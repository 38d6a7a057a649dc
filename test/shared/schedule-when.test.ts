import { describe, expect, it } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { nextCronRun, parseDeclaredSchedules, parseScheduleWhen } from "../../services/shared/schedule-when.js";

const NOW = Date.parse("2026-12-06T10:00:30.000Z");

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    return (err as ConnectError).rawMessage;
  }
  throw new Error("expected InvalidArgument");
}

describe("parseScheduleWhen", () => {
  it("reads a delay, a date and a cron (UTC, 5 or 6 fields)", () => {
    expect(parseScheduleWhen({ delay_ms: 1500 }, NOW)).toEqual({ kind: "delay", spec: "1500", dueAt: NOW + 1500 });
    expect(parseScheduleWhen({ at: "2026-12-24T18:00:00+01:00" }, NOW)).toEqual({ kind: "date", spec: "2026-12-24T17:00:00.000Z", dueAt: Date.parse("2026-12-24T17:00:00Z") });
    expect(parseScheduleWhen({ cron: "0 * * * *" }, NOW)).toEqual({ kind: "cron", spec: "0 * * * *", dueAt: Date.parse("2026-12-06T11:00:00Z") });
    expect(parseScheduleWhen({ cron: "*/10 * * * * *" }, NOW).dueAt).toBe(Date.parse("2026-12-06T10:00:40Z"));
    // A date already past is due at once (as a missed one would be).
    expect(parseScheduleWhen({ at: "2026-01-01T00:00:00Z" }, NOW).dueAt).toBeLessThan(NOW);
  });

  it("refuses what is not exactly one valid when, naming the problem", () => {
    expect(refused(() => parseScheduleWhen("soon", NOW))).toMatch(/delay in ms, a date, or a cron/);
    expect(refused(() => parseScheduleWhen({}, NOW))).toMatch(/exactly one of delay_ms, at, cron/);
    expect(refused(() => parseScheduleWhen({ delay_ms: 5, cron: "* * * * *" }, NOW))).toMatch(/exactly one/);
    expect(refused(() => parseScheduleWhen({ delay_ms: -1 }, NOW))).toMatch(/delay_ms must be/);
    expect(refused(() => parseScheduleWhen({ at: "2026-12-24 18:00" }, NOW))).toMatch(/RFC 3339/);
    expect(refused(() => parseScheduleWhen({ at: "2099-01-01T00:00:00Z" }, NOW))).toMatch(/within 10 years/);
    expect(refused(() => parseScheduleWhen({ cron: "every tuesday" }, NOW))).toMatch(/not a valid cron expression/);
    expect(refused(() => parseScheduleWhen({ cron: "0 0 30 2 *" }, NOW))).toMatch(/never runs/);
  });

  it("nextCronRun is strictly after the given time", () => {
    expect(nextCronRun("0 * * * *", Date.parse("2026-12-06T11:00:00Z"))).toBe(Date.parse("2026-12-06T12:00:00Z"));
  });
});

describe("parseDeclaredSchedules (podium.json schedules)", () => {
  it("accepts named crons and defaults the message to {}", () => {
    expect(parseDeclaredSchedules(undefined)).toEqual([]);
    expect(parseDeclaredSchedules([{ name: "hourly", cron: "0 * * * *" }])).toEqual([{ name: "hourly", cron: "0 * * * *", message: {} }]);
  });

  it("names the bad entry", () => {
    expect(refused(() => parseDeclaredSchedules({}))).toMatch(/must be an array/);
    expect(
      refused(() =>
        parseDeclaredSchedules([
          { name: "a", cron: "0 * * * *" },
          { name: "a", cron: "0 * * * *" },
        ]),
      ),
    ).toMatch(/schedules\[1\]\.name must be a unique name/);
    expect(refused(() => parseDeclaredSchedules([{ name: "x", cron: "nope" }]))).toMatch(/schedules\[0\]: cron "nope" is not a valid cron expression/);
    expect(refused(() => parseDeclaredSchedules([{ name: "x", cron: "0 * * * *", message: "hi" }]))).toMatch(/schedules\[0\]\.message must be an object/);
  });
});
