// A counter: "up" (default), "down" or "reset". Keeps the last 5 commands, so state deltas show
// both a replaced number and array adds/removes.
import { defineAgent } from "@podium-agents/sdk";

interface State {
  count: number;
  /** The last 5 commands. */
  history: string[];
}

export default defineAgent<State>({
  initialState: { count: 0, history: [] },

  async onMessage(ctx, message) {
    const command = String(message.text ?? "up").trim() || "up";
    if (command === "reset") ctx.state.count = 0;
    else ctx.state.count += command === "down" ? -1 : 1;
    ctx.state.history.push(command);
    if (ctx.state.history.length > 5) ctx.state.history.shift();
    ctx.send("complete", { text: `count = ${ctx.state.count}` });
  },
});
