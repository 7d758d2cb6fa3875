import { describe, expect, it } from "vitest";
import { SseParser, backoff } from "./sse";

describe("SseParser", () => {
  it("dispatches an event at a blank line with its type, data and id", () => {
    const parser = new SseParser();
    const events = parser.push('event: SessionStatusChanged\ndata: {"a":1}\nid: events:7,messages:0\n\n');
    expect(events).toEqual([{ event: "SessionStatusChanged", data: '{"a":1}', id: "events:7,messages:0" }]);
    expect(parser.lastEventId).toBe("events:7,messages:0");
  });

  it("reads events split anywhere across chunks, CRLF included", () => {
    const text = "event: A\r\ndata: one\r\n\r\nevent: B\r\ndata: two\r\n\r\n";
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = new SseParser();
      const events = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(events.map((e) => [e.event, e.data])).toEqual([
        ["A", "one"],
        ["B", "two"],
      ]);
    }
  });

  it("joins data lines, skips comments and defaults the type to message", () => {
    const parser = new SseParser();
    expect(parser.push(": keep-alive\n\ndata:a\ndata: b\n\n")).toEqual([{ event: "message", data: "a\nb", id: undefined }]);
  });

  it("keeps the last id for later events and ignores one with NUL", () => {
    const parser = new SseParser();
    parser.push("id: 1\ndata: x\n\n");
    const [event] = parser.push("id: bad\0\ndata: y\n\n");
    expect(event.id).toBe("1");
  });

  it("drops a block without data", () => {
    expect(new SseParser().push("event: A\n\n")).toEqual([]);
  });
});

describe("backoff", () => {
  it("doubles from one second up to fifteen", () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(backoff)).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });
});
