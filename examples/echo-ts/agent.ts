// Echoes the message text back as a stream, one word at a time, and counts turns in ctx.state.
export default {
  initialState: { turns: 0 },

  async onMessage(ctx, message) {
    const text = String(message.text ?? "");
    ctx.state.turns += 1;
    ctx.send("stream_start", { turn: ctx.state.turns });
    for (const chunk of text.match(/\S+\s*|\s+/g) ?? [text]) {
      ctx.send("stream_update", { text: chunk });
    }
    ctx.send("stream_end");
  },
};
