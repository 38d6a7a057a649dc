// An agent written against the installed @podium-agents/sdk: type-checked with the consumer's strict
// tsc, deployed with the installed `podium deploy`. In its sandbox there is no node_modules; the
// runner serves `@podium-agents/sdk` itself.
import { defineAgent, type AgentContext } from "@podium-agents/sdk";

interface State {
  turns: number;
}

function reply(ctx: AgentContext<State>, text: string): void {
  ctx.send("stream_start", { turn: ctx.turn });
  ctx.send("stream_update", { text });
  ctx.send("stream_end");
}

export default defineAgent<State>({
  initialState: { turns: 0 },
  async onMessage(ctx, message) {
    ctx.state.turns += 1;
    reply(ctx, `sdk agent turn ${ctx.state.turns}: ${String(message.text)}`);
  },
});
