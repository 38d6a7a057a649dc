import { describe, it, expect } from "@jest/globals";
import { compileClientOptions, normalizeBaseUrl } from "../../packages/client/src/index.js";

describe("compileClientOptions", () => {
  it("fills the contract's defaults and reads PODIUM_URL / PODIUM_API_KEY", () => {
    const compiled = compileClientOptions({}, { PODIUM_URL: "http://podium:8080/", PODIUM_API_KEY: "k-1" });
    expect(compiled).toMatchObject({
      url: "http://podium:8080",
      apiKey: "k-1",
      breaker: { failureThreshold: 5, cooldownMs: 30_000 },
      retry: { delaysMs: [500, 1000, 2000, 4000], maxRetries: 3, jitter: true },
      isAliveTimeoutMs: 5_000,
      fileTimeoutMs: 15_000,
    });
    expect(typeof compiled.sleep).toBe("function");
    expect(typeof compiled.random).toBe("function");
  });

  it("lets every option override the environment", () => {
    const compiled = compileClientOptions(
      {
        url: "https://elsewhere.example/podium",
        apiKey: "explicit",
        breaker: { failureThreshold: 2, cooldownMs: 100 },
        retry: { delaysMs: [1, 2], maxRetries: 5, jitter: false },
        isAliveTimeoutMs: 10,
        fileTimeoutMs: 20,
        createTimeoutMs: 30,
        stopTimeoutMs: 40,
        connectTimeoutMs: 50,
      },
      { PODIUM_URL: "http://ignored", PODIUM_API_KEY: "ignored" },
    );
    expect(compiled).toMatchObject({
      url: "https://elsewhere.example/podium",
      apiKey: "explicit",
      breaker: { failureThreshold: 2, cooldownMs: 100 },
      retry: { delaysMs: [1, 2], maxRetries: 5, jitter: false },
      isAliveTimeoutMs: 10,
      fileTimeoutMs: 20,
      createTimeoutMs: 30,
      stopTimeoutMs: 40,
      connectTimeoutMs: 50,
    });
  });

  it("sends no key when none is configured", () => {
    expect(compileClientOptions({ url: "http://x" }, {}).apiKey).toBeUndefined();
    expect(compileClientOptions({ url: "http://x" }, { PODIUM_API_KEY: "" }).apiKey).toBeUndefined();
  });

  it("copies the delay list so later changes to the caller's array do not leak in", () => {
    const delaysMs = [10, 20];
    const compiled = compileClientOptions({ url: "http://x", retry: { delaysMs } }, {});
    delaysMs[0] = 999;
    expect(compiled.retry.delaysMs).toEqual([10, 20]);
  });

  it.each([
    ["no url at all", {}],
    ["an unparsable url", { url: "http://exa mple:99999" }],
    ["a non-http url", { url: "ftp://x" }],
    ["a url with a query", { url: "http://x/?a=1" }],
  ])("rejects %s with TypeError", (_name, options) => {
    expect(() => compileClientOptions(options, {})).toThrow(TypeError);
  });

  it.each([
    ["failureThreshold 0", { breaker: { failureThreshold: 0 } }],
    ["fractional failureThreshold", { breaker: { failureThreshold: 1.5 } }],
    ["negative cooldown", { breaker: { cooldownMs: -1 } }],
    ["empty delays", { retry: { delaysMs: [] } }],
    ["negative delay", { retry: { delaysMs: [100, -1] } }],
    ["negative maxRetries", { retry: { maxRetries: -1 } }],
    ["zero file timeout", { fileTimeoutMs: 0 }],
    ["infinite probe timeout", { isAliveTimeoutMs: Infinity }],
  ])("rejects %s with RangeError", (_name, options) => {
    expect(() => compileClientOptions({ url: "http://x", ...options }, {})).toThrow(RangeError);
  });
});

describe("normalizeBaseUrl", () => {
  it.each([
    ["http://a:1/", "http://a:1"],
    ["https://a/base//", "https://a/base"],
    ["localhost:8080", "http://localhost:8080"],
    ["ws://a:1", "http://a:1"],
    ["wss://a", "https://a"],
  ])("%s -> %s", (input, output) => {
    expect(normalizeBaseUrl(input)).toBe(output);
  });
});
