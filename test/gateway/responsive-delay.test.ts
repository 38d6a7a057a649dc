/** A deadline that does not count the time this process itself was stalled. */
import { describe, it, expect } from "@jest/globals";
import { responsiveDelay } from "../../services/shared/responsive-delay.js";

describe("responsiveDelay", () => {
  it("waits about `ms` while the process runs, and does not expire during a stall of the process", async () => {
    let start = Date.now();
    await responsiveDelay(200);
    expect(Date.now() - start).toBeGreaterThanOrEqual(200);

    let expired = false;
    const delay = responsiveDelay(300).then(() => (expired = true));
    start = Date.now();
    while (Date.now() - start < 600) {
      // the process is stalled (CPU starvation, a long synchronous task) for twice the delay
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(expired).toBe(false);
    await delay;
    const controller = new AbortController();
    const aborted = responsiveDelay(60_000, controller.signal);
    controller.abort();
    await aborted;
  });
});
