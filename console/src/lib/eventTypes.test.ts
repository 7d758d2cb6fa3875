import { describe, expect, it } from "vitest";
import openapi from "../../../openapi/openapi.json";
import { EVENT_GROUPS, EVENT_TYPES, eventsToSend, isAll } from "./eventTypes";

type Schema = { oneOf?: Schema[]; $ref?: string; required?: string[]; description?: string };
const schemas = (openapi as unknown as { components: { schemas: Record<string, Schema> } }).components.schemas;
const resolve = (schema: Schema): Schema => (schema.$ref ? schemas[schema.$ref.split("/").pop()!] : schema);

/** The API's event types by aggregate, from the `EventPayload` schema. */
function apiTypes(): Map<string, string[]> {
  const byAggregate = new Map<string, string[]>();
  for (const variant of schemas.EventPayload.oneOf ?? []) {
    // Each variant is described as "... (`<aggregate>`)."
    const aggregate = /\(`(\w+)`\)\.?$/.exec(variant.description ?? "")?.[1];
    expect(aggregate, JSON.stringify(variant)).toBeTruthy();
    byAggregate.set(aggregate!, (resolve(variant).oneOf ?? []).map((event) => event.required![0]));
  }
  return byAggregate;
}

describe("the event types offered for webhooks", () => {
  it("are the API's, aggregate by aggregate", () => {
    const api = apiTypes();
    const ours = new Map(EVENT_GROUPS.map((g) => [g.aggregate, [...g.types].sort()]));
    expect(new Map([...api].map(([a, types]) => [a, [...types].sort()]))).toEqual(ours);
  });

  it("name each type once", () => {
    expect(new Set(EVENT_TYPES).size).toBe(EVENT_TYPES.length);
  });
});

describe("the events sent for a choice", () => {
  it("is `*` for all", () => {
    expect(eventsToSend(true, new Set(["MessageSent"]))).toEqual(["*"]);
    expect(isAll(["*"])).toBe(true);
    expect(isAll(["MessageSent"])).toBe(false);
  });

  it("keeps the table's order and an older subscription's unknown types", () => {
    expect(eventsToSend(false, new Set(["SessionCreated", "OldType", "MessageSent"]))).toEqual([
      "MessageSent",
      "SessionCreated",
      "OldType",
    ]);
  });
});
