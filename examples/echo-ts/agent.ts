// Echoes the message text back as a stream, one word at a time, and counts turns in ctx.state.
import { defineAgent } from "@podium-agents/sdk";

export default defineAgent({
  initialState: { turns: 0 },

  async onMessage(ctx, message) {
    const text = String(message.text ?? "");
    ctx.state.turns += 1;
    ctx.send("stream_start", { turn: ctx.state.turns });
    const words = text.split(" ");
    words.forEach((word, i) => {
      ctx.send("stream_update", { text: i === words.length - 1 ? word : word + " " });
    });
    ctx.send("stream_end");
  },
});
