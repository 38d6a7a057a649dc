import { describe, it, expect } from "@jest/globals";
import { EventQueue } from "../../packages/client/src/event-queue.js";

function queue(highWaterMark = 4) {
  const calls: string[] = [];
  const q = new EventQueue<number>({ pause: () => calls.push("pause"), resume: () => calls.push("resume") }, highWaterMark);
  return { q, calls };
}

describe("EventQueue", () => {
  it("pauses the source at the high-water mark and resumes at half of it", async () => {
    const { q, calls } = queue(4);
    for (let i = 1; i <= 5; i++) q.push(i);
    expect(calls).toEqual(["pause"]);
    const it = q[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(1);
    expect((await it.next()).value).toBe(2);
    expect(calls).toEqual(["pause"]);
    expect((await it.next()).value).toBe(3);
    expect(calls).toEqual(["pause", "resume"]);
  });

  it("hands a pushed value straight to a waiting consumer, then ends after the buffer", async () => {
    const { q } = queue();
    const it = q[Symbol.asyncIterator]();
    const pending = it.next();
    q.push(7);
    expect(await pending).toEqual({ value: 7, done: false });
    q.push(8);
    q.end();
    q.push(9);
    expect(await it.next()).toEqual({ value: 8, done: false });
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it("delivers the buffer before the error", async () => {
    const { q } = queue();
    q.push(1);
    q.end(new Error("dropped"));
    const it = q[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(1);
    await expect(it.next()).rejects.toThrow("dropped");
  });

  it("a consumer that stops early drops further events and resumes a paused source", async () => {
    const { q, calls } = queue(2);
    q.push(1);
    q.push(2);
    for await (const value of q) {
      expect(value).toBe(1);
      break;
    }
    expect(calls).toEqual(["pause", "resume"]);
    q.push(3);
    expect(() => q[Symbol.asyncIterator]()).toThrow(TypeError);
  });
});
