import { describe, it, expect } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseClientFrame, parseClientMessage } from "../../services/translator/parse-client-message.js";

const ACCEPT: Array<[string, unknown, unknown]> = [
  ["process_message", { type: "process_message", content: { text: "Fix it" } }, { type: "process_message", content: { text: "Fix it" } }],
  [
    "process_message without text (a content object of whatever shape; SendMessage's validator checks text)",
    { type: "process_message", content: { image: "a.png" } },
    { type: "process_message", content: { image: "a.png" } },
  ],
  ["process_message with metadata and id", { type: "process_message", id: "m1", content: { text: "hi", mode: "plan" } }, { type: "process_message", id: "m1", content: { text: "hi", mode: "plan" } }],
  [
    "process_message with a multitask_strategy",
    { type: "process_message", content: { text: "again" }, multitask_strategy: "interrupt" },
    { type: "process_message", content: { text: "again" }, multitask_strategy: "interrupt" },
  ],
  ["cancel, bare", { type: "cancel" }, { type: "cancel" }],
  ["list_schedules", { type: "list_schedules", id: 4 }, { type: "list_schedules", id: 4 }],
  ["cancel of one turn", { type: "cancel", id: "c", turn: 12 }, { type: "cancel", id: "c", turn: 12 }],
  ["answer", { type: "answer", request_id: "r1", value: { approved: true } }, { type: "answer", request_id: "r1", value: { approved: true } }],
  ["answer without a value answers null", { type: "answer", id: 9, request_id: "r1" }, { type: "answer", id: 9, request_id: "r1", value: null }],
  ["list_files, bare", { type: "list_files" }, { type: "list_files" }],
  ["list_files with path and depth", { type: "list_files", id: 3, path: "src", depth: 2 }, { type: "list_files", id: 3, path: "src", depth: 2 }],
  ["read_file", { type: "read_file", path: "src/a b.ts" }, { type: "read_file", path: "src/a b.ts" }],
  ["file_history", { type: "file_history", id: "h", path: "README.md" }, { type: "file_history", id: "h", path: "README.md" }],
  ["file_at_iteration", { type: "file_at_iteration", path: "a.txt", iteration: 4, extra: true }, { type: "file_at_iteration", path: "a.txt", iteration: 4 }],
];

const REJECT: Array<[string, unknown]> = [
  ["not an object", "process_message"],
  ["an array", [{ type: "read_file" }]],
  ["null", null],
  ["no type", { content: { text: "x" } }],
  ["unknown type", { type: "delete_everything" }],
  ["process_message without content", { type: "process_message" }],
  ["process_message with string content", { type: "process_message", content: "hi" }],
  ["process_message with an unknown multitask_strategy", { type: "process_message", content: { text: "x" }, multitask_strategy: "rollback" }],
  ["cancel with a negative turn", { type: "cancel", turn: -1 }],
  ["answer without request_id", { type: "answer", value: 1 }],
  ["answer with an empty request_id", { type: "answer", request_id: "", value: 1 }],
  ["bad id (object)", { type: "list_files", id: { x: 1 } }],
  ["bad id (empty)", { type: "list_files", id: "" }],
  ["bad id (fraction)", { type: "list_files", id: 1.5 }],
  ["list_files with numeric path", { type: "list_files", path: 5 }],
  ["list_files with negative depth", { type: "list_files", depth: -1 }],
  ["list_files with fractional depth", { type: "list_files", depth: 1.5 }],
  ["list_files with huge depth", { type: "list_files", depth: 1000 }],
  ["read_file without path", { type: "read_file" }],
  ["read_file with empty path", { type: "read_file", path: "" }],
  ["read_file with only slashes", { type: "read_file", path: "//" }],
  ["read_file escaping the workspace", { type: "read_file", path: "src/../../etc/passwd" }],
  ["read_file with NUL", { type: "read_file", path: "a\0b" }],
  ["file_history with too long a path", { type: "file_history", path: "a".repeat(5000) }],
  ["file_at_iteration without iteration", { type: "file_at_iteration", path: "a" }],
  ["file_at_iteration with string iteration", { type: "file_at_iteration", path: "a", iteration: "3" }],
  ["file_at_iteration with negative iteration", { type: "file_at_iteration", path: "a", iteration: -2 }],
];

describe("parseClientMessage", () => {
  it.each(ACCEPT)("accepts %s", (_name, input, expected) => {
    expect(parseClientMessage(input)).toEqual(expected);
  });

  it.each(REJECT)("rejects %s with InvalidArgument", (_name, input) => {
    let error: unknown;
    try {
      parseClientMessage(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
  });

  it("parseClientFrame parses text frames and rejects invalid JSON", () => {
    expect(parseClientFrame('{"type":"read_file","path":"a"}')).toEqual({ type: "read_file", path: "a" });
    expect(() => parseClientFrame("{nope")).toThrow(ConnectError);
  });
});
