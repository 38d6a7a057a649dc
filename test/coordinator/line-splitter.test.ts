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
    const s = new LineSplitter(
      (batch) => lines.push(...batch),
      8,
      () => overflows++,
    );
    for (let i = 0; i < 1000; i++) s.push(Buffer.alloc(1024, 0x58)); // 1 MB with no newline
    s.push(Buffer.from("XX\nnext\n"));
    expect(lines).toEqual(["XXXXXXXX …[truncated]", "next"]);
    expect(overflows).toBe(1);
  });

  it("gives the lines of the whole stream however it is cut, multi-byte characters and empty lines included", () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const pieces = ["a", "é", "😀", "\n", "\n\n", '{"text":"x"}', "ß"];
    const text = Array.from({ length: 4000 }, () => pieces[random(pieces.length)]).join("") + "\n";
    const bytes = Buffer.from(text);
    for (let round = 0; round < 20; round++) {
      const got: string[] = [];
      const s = new LineSplitter((batch) => got.push(...batch));
      for (let at = 0; at < bytes.length; ) {
        const size = 1 + random(round < 10 ? 7 : 600);
        s.push(bytes.subarray(at, at + size));
        at += size;
      }
      s.end();
      expect(got).toEqual(text.slice(0, -1).split("\n"));
    }
  });
});
