/**
 * WebSocket text frames as a server writes them (RFC 6455 §5.2: FIN, opcode 1, no mask, no extension),
 * several in one buffer: a batch of updates goes to the socket as one write instead of two `ws` writes per
 * frame (~1.5 µs of CPU per streamed event). Only for a connection without extensions (no
 * permessage-deflate: the gateway's servers never negotiate one).
 */
const FIN_TEXT = 0x81;

function headerBytes(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

function writeHeader(buffer: Buffer, at: number, length: number): number {
  buffer[at] = FIN_TEXT;
  if (length < 126) {
    buffer[at + 1] = length;
    return at + 2;
  }
  if (length < 65536) {
    buffer[at + 1] = 126;
    buffer.writeUInt16BE(length, at + 2);
    return at + 4;
  }
  buffer[at + 1] = 127;
  buffer.writeUInt32BE(Math.floor(length / 2 ** 32), at + 2);
  buffer.writeUInt32BE(length >>> 0, at + 6);
  return at + 10;
}

/** The frames of `texts`, in order, as one buffer. */
export function encodeTextFrames(texts: readonly string[]): Buffer {
  const lengths = texts.map((text) => Buffer.byteLength(text, "utf8"));
  let total = 0;
  for (const length of lengths) total += headerBytes(length) + length;
  const buffer = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    const length = lengths[i] as number;
    at = writeHeader(buffer, at, length);
    at += buffer.write(texts[i] as string, at, length, "utf8");
  }
  return buffer;
}
