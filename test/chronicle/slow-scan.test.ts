/**
 * Without a usable watcher every capture walks the whole workspace on the coordinator's main thread. After
 * a slow walk (options.slowScan), the turns' captures wait until the walks' share of the time is back under
 * the limit: what changed meanwhile is recorded by the next capture, and the final capture never waits.
 */
import { describe, it, expect, afterEach } from "@jest/globals";
import { ChronicleFixture } from "./chronicle-test-utils.js";

const changes = (result: { files: { change: string; path: string }[] } | undefined) => (result?.files ?? []).map((f) => `${f.change} ${f.path}`);

describe("captures after a slow full scan (no watcher)", () => {
  let fx: ChronicleFixture | undefined;
  afterEach(() => fx?.cleanup());

  it("wait while the scans' share of the time is over the limit, then record everything; the final capture never waits", async () => {
    fx = new ChronicleFixture();
    // Every scan counts as slow, and its share may be 1/100000: the next turns' captures wait (for minutes).
    const chronicle = fx.open({ watch: false, slowScan: { slowScanMs: 0, scanShare: 0.00001 } });
    fx.write("a.txt", "a");
    expect(changes(await chronicle.captureSoon())).toEqual(["created a.txt"]);
    fx.write("b.txt", "b");
    expect(chronicle.captureSoon()).toBeUndefined();
    expect(chronicle.lastFullScanReason).toBe("deferred: the last full scan was slow");
    fx.write("c.txt", "c");
    expect(chronicle.captureSoon()).toBeUndefined();
    // The final capture (stop, hibernation) scans anyway, and finds both.
    expect(changes(chronicle.capture()).sort()).toEqual(["created b.txt", "created c.txt"]);
  });

  it("do not wait after scans under slowScanMs", async () => {
    fx = new ChronicleFixture();
    const chronicle = fx.open({ watch: false, slowScan: { slowScanMs: 60_000, scanShare: 0.00001 } });
    for (const name of ["a", "b", "c"]) {
      fx.write(`${name}.txt`, name);
      expect(changes(await chronicle.captureSoon())).toEqual([`created ${name}.txt`]);
    }
  });
});
