/**
 * `podium restore --timestamp T` (services/cli/restore-command.ts): offsets into the past are resolved
 * against `now`, RFC 3339 times with a zone pass through unchanged, a zone-less date-time is sent as
 * ISO UTC, and anything else is refused before a request is made.
 */
import { describe, it, expect } from "@jest/globals";
import { resolvePointInTime } from "../../services/cli/restore-command.js";

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0); // 2026-11-23T12:00:00.000Z

describe("resolvePointInTime", () => {
  it.each([
    ["-90s", NOW - 90_000, "2026-11-23T11:58:30.000Z"],
    ["-5m", NOW - 5 * 60_000, "2026-11-23T11:55:00.000Z"],
    ["-2h", NOW - 2 * 3_600_000, "2026-11-23T10:00:00.000Z"],
    ["-1d", NOW - 86_400_000, "2026-11-22T12:00:00.000Z"],
    ["-0s", NOW, "2026-11-23T12:00:00.000Z"],
    ["-1.5h", NOW - 1.5 * 3_600_000, "2026-11-23T10:30:00.000Z"],
    ["-36h", NOW - 36 * 3_600_000, "2026-11-22T00:00:00.000Z"],
  ])("offset %j is computed from now", (text, expectedMs, expectedIso) => {
    const resolved = resolvePointInTime(text, NOW);
    expect(resolved).toBe(expectedIso);
    expect(Date.parse(resolved)).toBe(expectedMs);
  });

  it("tolerates whitespace around an offset", () => {
    expect(resolvePointInTime("  -5m\n", NOW)).toBe("2026-11-23T11:55:00.000Z");
  });

  it("defaults now to the current time", () => {
    const before = Date.now();
    const resolved = Date.parse(resolvePointInTime("-1m"));
    const after = Date.now();
    expect(resolved).toBeGreaterThanOrEqual(before - 60_000);
    expect(resolved).toBeLessThanOrEqual(after - 60_000);
  });

  it.each(["2026-11-23T13:00:00Z", "2026-11-23T13:00:00.123Z", "2026-11-23T13:00:00+05:30", "2026-11-23T13:00:00.5-08:00", "2026-11-23T13:00:00+00:00"])(
    "an RFC 3339 time with a zone (%j) is returned unchanged",
    (text) => {
      expect(resolvePointInTime(text, NOW)).toBe(text);
    },
  );

  it("refuses a date-time without a zone (it would mean different instants on different hosts) and impossible dates", () => {
    for (const text of ["2026-11-23T13:00:00", "2026-11-23T13:00:00.250", "2026-11-23T13:00:00+0530", "2026-02-30T00:00:00Z", "2026-11-23T23:60:00Z"]) {
      expect(() => resolvePointInTime(text, NOW)).toThrow(RangeError);
    }
  });

  it("accepts a lower-case z and surrounding blanks", () => {
    expect(resolvePointInTime("2026-11-23T13:00:00z", NOW)).toBe("2026-11-23T13:00:00z");
    expect(resolvePointInTime("  2026-11-23T13:00:00Z ", NOW)).toBe("2026-11-23T13:00:00Z");
  });

  it.each([
    "yesterday",
    "2026-13-45T00:00:00Z",
    "",
    "   ",
    "2026-11-23",
    "2026-11-23 13:00:00Z",
    "2026-11-23T25:00:00Z",
    "2026-11-23Tnoon",
    "2026-11-23T13:00:00Zjunk",
    "+5m",
    "-5",
    "-5w",
    "5m",
    "-m",
    "1700000000000",
  ])("refuses %j with a RangeError mentioning --timestamp", (text) => {
    let caught: unknown;
    try {
      resolvePointInTime(text, NOW);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RangeError);
    const message = (caught as RangeError).message;
    expect(message).toContain("--timestamp");
    expect(message).toContain(JSON.stringify(text));
  });
});
