// Benchmark agent: {mb} grows the state by that many MiB of 1 KiB records ({words: true}: of words, which
// compress like a conversation rather than to nothing); {pad} sets one string field of that many characters;
// {touch} changes one field.
let seed = 7;
const syllables = ["ka", "to", "re", "mi", "an", "el", "or", "th", "in", "st", "ou", "ing", "er", "al", "co", "de", "pro", "ve"];
function random(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
}
function words(chars: number): string {
  let text = "";
  while (text.length < chars) {
    for (let n = 1 + Math.floor(random() * random() * 4); n > 0; n--) text += syllables[Math.floor(random() * syllables.length)];
    text += " ";
  }
  return text.slice(0, chars);
}

export default {
  initialState: { records: [] as string[], touched: 0 },
  async onMessage(ctx: { state: { records: string[]; touched: number; pad?: string }; send(type: string, content?: object): void }, message: { mb?: number; words?: boolean; pad?: number }) {
    if (message.mb) {
      const record = "x".repeat(1024);
      for (let i = 0; i < message.mb * 1024; i++) ctx.state.records.push(message.words ? words(1024) : record);
    } else if (message.pad !== undefined) {
      ctx.state.pad = "p".repeat(message.pad);
    } else {
      ctx.state.touched += 1;
    }
    ctx.send("stream_end", { records: ctx.state.records.length });
  },
};
