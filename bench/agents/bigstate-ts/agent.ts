// Benchmark agent: {mb} grows the state by that many MiB of 1 KiB records; {touch} changes one field.
export default {
  initialState: { records: [] as string[], touched: 0 },
  async onMessage(ctx: { state: { records: string[]; touched: number }; send(type: string, content?: object): void }, message: { mb?: number }) {
    if (message.mb) {
      const record = "x".repeat(1024);
      for (let i = 0; i < message.mb * 1024; i++) ctx.state.records.push(record);
    } else {
      ctx.state.touched += 1;
    }
    ctx.send("stream_end", { records: ctx.state.records.length });
  },
};
