// A small agent that exercises what an ACP client (Zed, `podium acp`) shows: thinking, a tool call
// with its result, usage, a permission request ("write <file> <text>") and a question (a message
// ending in "?"). No model: it only looks at the workspace and echoes. See docs/acp.md.
import fs from "node:fs";
import path from "node:path";
import { defineAgent } from "@podium-agents/sdk";

export default defineAgent({
  initialState: { turns: 0 },

  async onMessage(ctx, message) {
    const text = String(message.text ?? "").trim();
    ctx.state.turns += 1;
    ctx.send("stream_start", { turn: ctx.state.turns });

    ctx.send("thinking.start");
    ctx.send("thinking.progress", { text: `Turn ${ctx.state.turns}: looking at the workspace first.` });
    ctx.send("thinking.complete");

    const callId = `list-${ctx.state.turns}`;
    ctx.send("tool.call", { tool_call_id: callId, name: "list_files", args: { path: "." } });
    const files = fs.readdirSync(ctx.workspace);
    ctx.send("tool.result", { tool_call_id: callId, result: files.length ? files.join("\n") : "(empty workspace)" });

    let reply = `You said: ${text || "(nothing)"}. The workspace has ${files.length} file(s).`;
    const write = /^write\s+(\S+)\s+([\s\S]+)$/.exec(text);
    if (write) {
      const [, file, content] = write;
      const answer = await ctx.requestPermission({ tool_name: "write_file", description: `Write ${file}`, args: { path: file, content } });
      if (typeof answer === "object" && answer !== null && !Array.isArray(answer) && answer.approved === true) {
        fs.mkdirSync(path.dirname(path.join(ctx.workspace, file)), { recursive: true });
        fs.writeFileSync(path.join(ctx.workspace, file), content);
        reply = `Wrote ${file} (${content.length} characters).`;
      } else {
        reply = `Not writing ${file}: permission was not given.`;
      }
    } else if (text.endsWith("?")) {
      const length = await ctx.ask("Short or long answer?", { choices: ["short", "long"] });
      reply = length === "long" ? `${reply} (A long answer would go here, if this agent had a model.)` : "Short answer: no model here.";
    }

    ctx.send("usage.context", { total_tokens: 200 * ctx.state.turns, context_window: 200000, model: "none" });
    ctx.send("usage", { input_tokens: 150, output_tokens: 50, cost: 0 });
    for (const word of reply.split(/(?<= )/)) ctx.send("stream_update", { text: word });
    ctx.send("stream_end");
  },
});
