/** LineSplitter: batches whole lines, keeps partial ones across chunks, and cuts a line that never ends. */
import { describe, expect, it } from "@jest/globals";
import { LineSplitter } from "../../services/coordinator/line-splitter.js";

describe("LineSplitter", () => {
  it("hands over complete lines per chunk and joins partial ones", () => {
    const batches: string[][] = [];
    const s = new LineSplitter((lines) => batches.push(lines));
    s.push(Buffer.from("a\nb"));
    s.push(Buffer.from("c\nd\n"));
    s.push(Buffer.from("tail"));
    s.end();
    expect(batches).toEqual([["a"], ["bc", "d"], ["tail"]]);
  });

  it("cuts a line longer than maxLine, drops the rest up to its newline and says so once", () => {
    const lines: string[] = [];
    let overflows = 0;
    const s = new LineSplitter((batch) => lines.push(...batch), 8, () => overflows++);
    for (let i = 0; i < 1000; i++) s.push(Buffer.alloc(1024, 0x58)); // 1 MB with no newline
    s.push(Buffer.from("XX\nnext\n"));
    expect(lines).toEqual(["XXXXXXXX …[truncated]", "next"]);
    expect(overflows).toBe(1);
  });
});
