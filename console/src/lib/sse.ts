// A Server-Sent Events reader over fetch: the browser's EventSource cannot
// send an Authorization header, and a long-lived token must never travel
// in a URL. The parser follows the HTML standard's event stream rules.

/** One dispatched event. */
export interface SseEvent {
  /** The `event` field (`message` when absent). */
  event: string;
  /** The `data` lines joined with newlines. */
  data: string;
  /** The last `id` seen, carried over to later events as the standard says. */
  id: string | undefined;
}

/** Turns chunks of a `text/event-stream` into events, in any split. */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  /** The last event id, for `Last-Event-ID` when reconnecting. */
  lastEventId: string | undefined;

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone CR at the end may be the first half of a CRLF.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return undefined;
      }
      const event = { event: this.event || "message", data: this.data.join("\n"), id: this.lastEventId };
      this.data = [];
      this.event = "";
      return event;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      default:
        // `retry` and unknown fields: the reconnection delay is ours.
        break;
    }
    return undefined;
  }
}

/** The delay before reconnection attempt `attempt` (0, 1, ...): 1 s doubling to 15 s. */
export function backoff(attempt: number): number {
  return Math.min(15_000, 1_000 * 2 ** Math.min(attempt, 4));
}

export type StreamState = "connecting" | "open" | "reconnecting";

export interface StreamOptions {
  url: string;
  token: () => string | null;
  onEvent: (event: SseEvent) => void;
  onState: (state: StreamState) => void;
  /** Called when the server refuses the credentials (401). */
  onUnauthorized: () => void;
  signal: AbortSignal;
}

/** Reads the stream until `signal` aborts, reconnecting with `Last-Event-ID`. */
export async function readEventStream(options: StreamOptions): Promise<void> {
  const { signal } = options;
  let lastEventId: string | undefined;
  let attempt = 0;
  while (!signal.aborted) {
    const token = options.token();
    if (!token) return;
    options.onState(attempt === 0 ? "connecting" : "reconnecting");
    try {
      const headers: Record<string, string> = {
        accept: "text/event-stream",
        authorization: `Bearer ${token}`,
      };
      if (lastEventId) headers["last-event-id"] = lastEventId;
      const response = await fetch(options.url, { headers, signal, cache: "no-store" });
      if (response.status === 401) {
        options.onUnauthorized();
        return;
      }
      if (!response.ok || !response.body) throw new Error(`event stream: ${response.status}`);
      options.onState("open");
      attempt = 0;
      const parser = new SseParser();
      parser.lastEventId = lastEventId;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) options.onEvent(event);
        lastEventId = parser.lastEventId;
      }
    } catch {
      if (signal.aborted) return;
    }
    options.onState("reconnecting");
    await sleep(backoff(attempt++), signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
