import { describe, expect, it } from "vitest";
import cases from "./autoReply.cases.json";
import { fold, matchRule, modifiersSupported, rustRegex, type Trigger } from "./autoReply";

// Each case's outcome as the server decides it: produced by the Rust code
// itself (the `regex` crate the server uses, and its `folded`); the regex
// cases are checked against the server's compiler again by
// tests/e2e/console_inbox.rs, so the two cannot drift apart.
describe("the test box agrees with the server", () => {
  for (const [trigger, pattern, text, expected] of cases as [Trigger, string, string, string][]) {
    const mixedCase = trigger === "regex" && /\(\?-?i|\(\?[a-zA-Z]*i[a-zA-Z]*:/.test(pattern) && !/^\(\?i\)/.test(pattern);
    it.runIf(modifiersSupported || !mixedCase)(`${trigger} ${JSON.stringify(pattern)} on ${JSON.stringify(text)}`, () => {
      expect(matchRule(trigger, pattern, text).kind).toBe(expected);
    });
  }
});

describe("folding", () => {
  it("trims, collapses whitespace, drops accents and lowers case", () => {
    expect(fold("  Térima   KASIH ")).toBe("terima kasih");
    expect(fold("JAM BUKA?")).toBe("jam buka?");
  });
});

describe("patterns the test box cannot try", () => {
  it("says so rather than guess", () => {
    // Rust knows more properties than JavaScript, and spells them more
    // loosely: an unknown one may be either's.
    for (const pattern of ["\\p{Age=6.0}", "\\p{NotAProperty}", "\\p{^Lu}"]) {
      expect(matchRule("regex", pattern, "a").kind).toBe("untestable");
    }
  });

  it("refuses a blank pattern as the server does", () => {
    expect(matchRule("keyword", "   ", "").kind).toBe("invalid");
    expect(matchRule("regex", "", "x").kind).toBe("invalid");
  });

  it("translates a mixed-case pattern only where the engine takes modifiers", () => {
    const result = rustRegex("a(?i)b");
    expect("regex" in result).toBe(modifiersSupported);
  });
});
