/**
 * Type-level tests of the agent author's surface (sdk/typescript/src/index.ts): checked by
 * `npx tsc --noEmit -p tsconfig.json` (CI's type check), never run. Each `@ts-expect-error` line is
 * a misuse that must fail to compile; if it ever compiles, tsc reports the unused directive.
 */
import { defineAgent, type AgentContext, type AgentEvents, type AnyEvents, type JsonObject, type SeedEvents } from "../../sdk/typescript/src/index.js";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined {
  return undefined;
}

// ---- the untyped default: state inferred from initialState, the seed vocabulary predeclared ----
export const inferred = defineAgent({
  initialState: { turns: 0, name: "ada" },
  async onMessage(ctx, message) {
    ctx.state.turns += 1;
    ctx.state.name = String(message.text ?? "");
    assertType<Equal<typeof ctx.state, { turns: number; name: string }>>();
    assertType<Equal<typeof message, JsonObject>>();
    ctx.send("stream_start", { turn: ctx.turn });
    ctx.send("stream_update", { text: "hi" });
    ctx.send("stream_end");
    ctx.send("complete", { text: "done", stop_reason: "end_turn" });
    ctx.send("thinking.start");
    ctx.send("tool.call", { tool_call_id: "c1", name: "ls", args: { path: "." } });
    ctx.send("tool.result", { tool_call_id: "c1", result: ["a.txt"], is_error: false });
    ctx.send("usage", { input_tokens: 10, output_tokens: 2, model: "m", cost: 0.01 });
    ctx.send("terminal.complete", { exit_code: null });
    ctx.send("error", { message: "failed", code: "bad_input" });
    // @ts-expect-error a typo of the event type
    ctx.send("stream_updat", { text: "hi" });
    // @ts-expect-error stream_update needs its text
    ctx.send("stream_update");
    // @ts-expect-error text must be a string
    ctx.send("stream_update", { text: 42 });
    // @ts-expect-error a typo of a content field
    ctx.send("stream_update", { txt: "hi" });
    // @ts-expect-error thinking.start carries no content
    ctx.send("thinking.start", { text: "x" });
    // @ts-expect-error error needs a message
    ctx.send("error", { code: "x" });
    // @ts-expect-error a platform event: only Podium writes turn.done into the stream
    ctx.send("turn.done", { turn: 1, ok: true });
    // @ts-expect-error the state has no such field
    ctx.state.count = 1;
    // @ts-expect-error turns is a number
    ctx.state.turns = "one";
  },
});

// ---- declared types: State, the agent's own events, the message ----
interface State {
  notes: string[];
}
interface Events {
  "note.added": { index: number; note: string };
  "notes.cleared": undefined;
  /** An agent may redefine a seed type's content (its declaration wins). */
  stream_update: { text: string; lang?: string };
}
interface Message {
  text?: string;
  clear?: boolean;
}

export const typed = defineAgent<State, Events, Message>({
  initialState: { notes: [] },
  onStart(ctx) {
    ctx.log.info("notes", ctx.state.notes.length);
  },
  async onMessage(ctx, message) {
    assertType<Equal<typeof message, Message>>();
    if (message.clear) {
      ctx.state.notes = [];
      ctx.send("notes.cleared");
      return;
    }
    const note = message.text ?? "";
    ctx.state.notes.push(note);
    ctx.send("note.added", { index: ctx.state.notes.length - 1, note });
    ctx.send("stream_update", { text: note, lang: "en" });
    ctx.send("stream_end"); // the seed vocabulary is still there
    // @ts-expect-error note.added needs both fields
    ctx.send("note.added", { note });
    // @ts-expect-error index is a number
    ctx.send("note.added", { index: "0", note });
    // @ts-expect-error not declared
    ctx.send("note.removed", { index: 0 });
    // @ts-expect-error notes holds strings
    ctx.state.notes.push(1);
    // @ts-expect-error Message has no such field
    void message.txt;
  },
});

export const typedBadState = defineAgent<State>({
  // @ts-expect-error initialState must match State
  initialState: { notes: [1] },
  onMessage() {},
});

// @ts-expect-error an agent needs onMessage
export const noHandler = defineAgent({ initialState: { a: 1 } });

// ---- helpers typed with AgentContext, and the AnyEvents opt-out ----
function reply(ctx: AgentContext<State, Events>, text: string): void {
  ctx.send("stream_update", { text });
  ctx.send("note.added", { index: 0, note: text });
}

export const loose = defineAgent<JsonObject, AnyEvents>({
  async onMessage(ctx) {
    ctx.send("anything.goes", { a: 1, b: [true] });
    ctx.send("bare");
    const answer = await ctx.ask("why?", { choices: ["a", "b"] });
    await ctx.requestPermission({ tool_name: "rm", description: "remove a file", args: { path: "/tmp/x" }, extra: 1 });
    ctx.send("answered", { answer });
    // @ts-expect-error content is an object
    ctx.send("x", "text");
  },
});

assertType<Equal<keyof AgentEvents, keyof SeedEvents>>();
assertType<Equal<AgentEvents<Events>["stream_update"], Events["stream_update"]>>();
void reply;
