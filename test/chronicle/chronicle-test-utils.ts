import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { Chronicle, type ChronicleOptions } from "../../services/coordinator/chronicle/chronicle.js";

/** A temp root holding `ws/` (the workspace) and `chronicle.db` (outside it). `cleanup()` closes and removes all. */
export class ChronicleFixture {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
  readonly workspace = path.join(this.root, "ws");
  readonly dbPath = path.join(this.root, "chronicle.db");
  private readonly opened: Chronicle[] = [];

  constructor() {
    fs.mkdirSync(this.workspace);
  }

  open(options: Partial<ChronicleOptions> = {}): Chronicle {
    const chronicle = Chronicle.open({ workspaceDir: this.workspace, dbPath: this.dbPath, ...options });
    this.opened.push(chronicle);
    return chronicle;
  }

  /** Writes a workspace file (creating parents); `content` string is UTF-8. */
  write(relative: string, content: string | Buffer): void {
    const file = path.join(this.workspace, relative);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  remove(relative: string): void {
    fs.rmSync(path.join(this.workspace, relative), { recursive: true, force: true });
  }

  readDisk(relative: string): Buffer {
    return fs.readFileSync(path.join(this.workspace, relative));
  }

  cleanup(): void {
    for (const chronicle of this.opened) chronicle.close();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Asserts that `fn` throws a ConnectError with `code` and a message matching `message`. */
export function expectConnectError(fn: () => unknown, code: Code, message?: RegExp): ConnectError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConnectError);
  const error = caught as ConnectError;
  expect(Code[error.code]).toBe(Code[code]);
  if (message) expect(error.rawMessage).toMatch(message);
  return error;
}
