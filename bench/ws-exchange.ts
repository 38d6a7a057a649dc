/** WebSocket helpers shared by the streaming benchmarks. */
import { WebSocket } from "ws";

export function openWebSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Sends `frame`, resolves when `count` frames matching `until` have arrived. */
export function exchange(ws: WebSocket, frame: string, count: number, until: (data: string) => boolean): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const onMessage = (data: Buffer): void => {
      if (until(data.toString()) && ++seen === count) {
        ws.off("message", onMessage);
        resolve();
      }
    };
    ws.on("message", onMessage);
    ws.send(frame);
  });
}
