// Benchmark agent: answers {n} with n small stream_update events in one turn, {text} with one.
export default {
  async onMessage(ctx: { send(type: string, content?: object): void }, message: { n?: number; text?: string }) {
    const n = message.n ?? 1;
    for (let i = 0; i < n; i++) ctx.send("stream_update", { text: message.text ?? "x", i });
    ctx.send("stream_end");
  },
};
