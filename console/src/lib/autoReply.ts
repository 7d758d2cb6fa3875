// Whether an auto-reply rule matches a message, exactly as the server's
// auto-responder decides it (workflows/src/auto_replies.rs), so the rule
// editor's test box tells the truth:
//
// - `keyword`: the whole message is the pattern, both folded: trimmed,
//   inner whitespace as one space, accents dropped (NFD without marks),
//   lower case, character by character;
// - `contains`: the folded message contains the folded pattern;
// - `regex`: the pattern, in the Rust `regex` crate's syntax, matches
//   somewhere in the message as received (not folded). It is translated to
//   an equivalent JavaScript RegExp (Unicode-aware \d \s \w \b, `.` without
//   \n, flags i m s x U R u, class set operations); what has no faithful
//   JavaScript equivalent is said to be untestable here rather than
//   guessed. Patterns the server would refuse are said to be invalid where
//   the translation can tell (look-around, back-references, unbalanced
//   groups); the server's size limit is checked only when the rule is saved.

export type Trigger = "keyword" | "contains" | "regex";

export type MatchResult =
  | { kind: "match" }
  | { kind: "no_match" }
  /** The pattern is not a valid Rust regex (or blank). */
  | { kind: "invalid"; reason: string }
  /** The pattern is valid Rust but cannot be tried in this browser. */
  | { kind: "untestable"; reason: string };

const WHITESPACE = /\p{White_Space}+/u;
const MARK = /\p{M}/u;

/** `text` as keywords compare (the server's `folded`). */
export function fold(text: string): string {
  const spaced = text
    .split(WHITESPACE)
    .filter((word) => word !== "")
    .join(" ");
  let out = "";
  for (const c of spaced.normalize("NFD")) {
    if (!MARK.test(c)) out += c.toLowerCase();
  }
  return out;
}

/** Whether `text` (a received message's text) matches the rule. */
export function matchRule(trigger: Trigger, pattern: string, text: string): MatchResult {
  switch (trigger) {
    case "keyword":
    case "contains": {
      // The server stores the pattern trimmed and refuses a blank one.
      if (pattern.trim() === "") return { kind: "invalid", reason: "empty" };
      const hit = trigger === "keyword" ? fold(text) === fold(pattern) : fold(text).includes(fold(pattern));
      return { kind: hit ? "match" : "no_match" };
    }
    case "regex": {
      if (pattern.trim() === "") return { kind: "invalid", reason: "empty" };
      const compiled = rustRegex(pattern);
      if ("error" in compiled) return compiled.error;
      return { kind: compiled.regex.test(text) ? "match" : "no_match" };
    }
  }
}

// ---------------------------------------------------------------------------
// Rust `regex` syntax (regex-syntax 0.8) → JavaScript RegExp with the `v` flag.

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  U: boolean;
  u: boolean;
  x: boolean;
  R: boolean;
}

class Refused extends Error {
  constructor(readonly result: MatchResult) {
    super(result.kind);
  }
}

const invalid = (reason: string) => new Refused({ kind: "invalid", reason });
const untestable = (reason: string) => new Refused({ kind: "untestable", reason });

/** Whether this JavaScript engine takes `(?i:...)` (Chrome 125+, Node 23+). */
export const modifiersSupported: boolean = (() => {
  try {
    new RegExp("(?i:a)", "v");
    return true;
  } catch {
    return false;
  }
})();

const hex = (cp: number) => `\\u{${cp.toString(16)}}`;
const UNICODE_WORD = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
const ASCII_WORD = "[0-9A-Za-z_]";

const ASCII_CLASSES: Record<string, string> = {
  alnum: "[0-9A-Za-z]",
  alpha: "[A-Za-z]",
  ascii: "[\\x00-\\x7F]",
  blank: "[\\t ]",
  cntrl: "[\\x00-\\x1F\\x7F]",
  digit: "[0-9]",
  graph: "[!-~]",
  lower: "[a-z]",
  print: "[ -~]",
  punct: "[!-\\/:-@\\[-`\\{-~]",
  space: "[\\t\\n\\x0B\\f\\r ]",
  upper: "[A-Z]",
  word: ASCII_WORD,
  xdigit: "[0-9A-Fa-f]",
};

/** Rust's `char::is_whitespace`: the White_Space property. */
const isSpace = (c: string) => /^\p{White_Space}$/u.test(c);
/** What Rust lets a backslash make literal: any ASCII but letters, digits,
 * `<` and `>`. */
const isEscapable = (c: string) => /^[\x00-\x7F]$/.test(c) && !/^[0-9A-Za-z<>]$/.test(c);

/** A Unicode property class (`\p{...}`) in JavaScript, or untestable. */
function property(name: string, negated: boolean): string {
  const query = name.trim();
  const candidates = (value: string): string[] => {
    const plain = value.trim().replace(/[\s-]+/g, "_");
    const unprefixed = /^is/i.test(plain) && plain.length > 2 ? plain.slice(2) : plain;
    const titled = (s: string) =>
      s
        .split("_")
        .map((part) => (part.length <= 2 ? part : part[0].toUpperCase() + part.slice(1).toLowerCase()))
        .join("_");
    return [...new Set([value, plain, unprefixed, titled(plain), titled(unprefixed)])];
  };
  const tries: string[] = [];
  const byValue = /^(.*?)(!=|=|:)(.*)$/.exec(query);
  if (byValue) {
    if (byValue[2] === "!=") negated = !negated;
    const prop = byValue[1].replace(/[\s_-]/g, "").toLowerCase();
    const jsName =
      prop === "gc" || prop === "generalcategory"
        ? "General_Category"
        : prop === "sc" || prop === "script"
          ? "Script"
          : prop === "scx" || prop === "scriptextensions"
            ? "Script_Extensions"
            : null;
    if (!jsName) throw untestable(`\\p{${name}}`);
    for (const value of candidates(byValue[3])) tries.push(`${jsName}=${value}`);
  } else {
    // A bare name: a binary property, else a general category, else a script.
    const special: Record<string, string> = { any: "Any", ascii: "ASCII", assigned: "Assigned" };
    const norm = query.replace(/[\s_-]/g, "").toLowerCase();
    if (special[norm]) tries.push(special[norm]);
    for (const value of candidates(query)) tries.push(value);
    for (const value of candidates(query)) tries.push(`Script=${value}`);
  }
  for (const attempt of tries) {
    try {
      new RegExp(`\\p{${attempt}}`, "v");
      return `\\${negated ? "P" : "p"}{${attempt}}`;
    } catch {
      // the next spelling
    }
  }
  throw untestable(`\\p{${name}}`);
}

/** A class item of the translation: JavaScript class syntax plus, for a
 * single character, its code point (the end of a range). */
interface ClassItem {
  js: string;
  cp?: number;
}

class Translator {
  private readonly chars: string[];
  private pos = 0;
  /** Whether the output uses case-insensitive atoms, and sensitive ones. */
  insensitive = false;
  sensitive = false;

  constructor(
    pattern: string,
    /** How case-insensitive atoms are written: by the flag of the whole
     * RegExp, or each in `(?i:...)`. */
    private readonly mode: "flag" | "wrap",
  ) {
    this.chars = [...pattern];
  }

  translate(): string {
    const flags: Flags = { i: false, m: false, s: false, U: false, u: true, x: false, R: false };
    return this.alternation(flags, 0);
  }

  private peek(offset = 0): string | undefined {
    return this.chars[this.pos + offset];
  }

  private eof(): boolean {
    return this.pos >= this.chars.length;
  }

  private skipSpace(flags: Flags) {
    if (!flags.x) return;
    while (!this.eof()) {
      const c = this.peek()!;
      if (isSpace(c)) this.pos++;
      else if (c === "#") {
        while (!this.eof() && this.peek() !== "\n") this.pos++;
      } else break;
    }
  }

  /** An atom that case-insensitivity changes (a literal, a class). */
  private cased(js: string, flags: Flags): string {
    if (flags.i) {
      this.insensitive = true;
      return this.mode === "wrap" ? `(?i:${js})` : js;
    }
    this.sensitive = true;
    return js;
  }

  private alternation(flags: Flags, depth: number): string {
    const branches: string[] = [];
    let items: string[] = [];
    // The last item and whether it may be repeated.
    let last: { js: string; repeatable: boolean } | null = null;
    for (;;) {
      this.skipSpace(flags);
      if (this.eof()) break;
      const c = this.peek()!;
      if (c === ")") {
        if (depth === 0) throw invalid("unopened group");
        break;
      }
      if (c === "|") {
        this.pos++;
        branches.push(items.join(""));
        items = [];
        last = null;
        continue;
      }
      if (c === "*" || c === "+" || c === "?" || c === "{") {
        if (!last || !last.repeatable) throw invalid("repetition without expression");
        const quantifier = this.quantifier(flags);
        items.pop();
        const js: string = `(?:${last.js})${quantifier}`;
        items.push(js);
        last = { js, repeatable: true };
        continue;
      }
      let js: string;
      if (c === "(") {
        const group = this.group(flags, depth);
        if (group === null) {
          // Flags for the rest of this group.
          last = { js: "", repeatable: false };
          continue;
        }
        js = group;
      } else if (c === "[") {
        js = this.cased(this.bracketClass(flags), flags);
      } else if (c === ".") {
        this.pos++;
        js = flags.s ? "[\\s\\S]" : flags.R ? "[^\\n\\r]" : "[^\\n]";
      } else if (c === "^") {
        this.pos++;
        // CRLF mode: \r, \n and \r\n end lines, never between \r and \n.
        js = flags.m ? (flags.R ? "(?<![^\\n\\r])(?!(?<=\\r)\\n)" : "(?<![^\\n])") : "(?<![\\s\\S])";
      } else if (c === "$") {
        this.pos++;
        js = flags.m ? (flags.R ? "(?![^\\n\\r])(?!(?<=\\r)\\n)" : "(?![^\\n])") : "(?![\\s\\S])";
      } else if (c === "\\") {
        js = this.escape(flags, false).js;
      } else {
        this.pos++;
        js = this.cased(hex(c.codePointAt(0)!), flags);
      }
      items.push(js);
      last = { js, repeatable: true };
    }
    branches.push(items.join(""));
    return branches.length === 1 ? branches[0] : branches.join("|");
  }

  /** `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each maybe lazy (`?`). */
  private quantifier(flags: Flags): string {
    const c = this.chars[this.pos++];
    let q: string;
    if (c === "{") {
      this.skipSpace(flags);
      const min = this.decimal(flags);
      this.skipSpace(flags);
      if (this.peek() === ",") {
        this.pos++;
        this.skipSpace(flags);
        if (this.peek() === "}") {
          if (min === null) throw invalid("repetition count");
          q = `{${min},}`;
        } else {
          const max = this.decimal(flags);
          if (min === null || max === null) throw invalid("repetition count");
          if (min > max) throw invalid("repetition range");
          q = `{${min},${max}}`;
        }
      } else {
        if (min === null) throw invalid("repetition count");
        q = `{${min}}`;
      }
      this.skipSpace(flags);
      if (this.peek() !== "}") throw invalid("repetition count unclosed");
      this.pos++;
    } else {
      q = c;
    }
    this.skipSpace(flags);
    let lazy = false;
    if (this.peek() === "?") {
      this.pos++;
      lazy = true;
    }
    // `U` swaps greedy and lazy (whether it matches at all is the same).
    if (flags.U) lazy = !lazy;
    return lazy ? `${q}?` : q;
  }

  private decimal(flags: Flags): number | null {
    let digits = "";
    while (!this.eof() && /[0-9]/.test(this.peek()!)) digits += this.chars[this.pos++];
    this.skipSpace(flags);
    if (digits === "") return null;
    const n = Number(digits);
    if (n > 0xffffffff) throw invalid("repetition count");
    return n;
  }

  /** A group; `null` for flags that apply to the rest of the current one. */
  private group(flags: Flags, depth: number): string | null {
    this.pos++; // (
    if (this.peek() !== "?") {
      const inner = this.alternation({ ...flags }, depth + 1);
      this.close();
      return `(?:${inner})`;
    }
    this.pos++; // ?
    const next = this.peek();
    if (next === "P" && this.peek(1) === "<") {
      this.pos += 2;
      this.groupName();
      const inner = this.alternation({ ...flags }, depth + 1);
      this.close();
      return `(?:${inner})`;
    }
    if (next === "<" && this.peek(1) !== "=" && this.peek(1) !== "!") {
      this.pos++;
      this.groupName();
      const inner = this.alternation({ ...flags }, depth + 1);
      this.close();
      return `(?:${inner})`;
    }
    if (next === "=" || next === "!" || next === "<") throw invalid("look-around");
    // Flags: `(?flags)` or `(?flags:...)`.
    const changed = { ...flags };
    let negate = false;
    let any = false;
    let seen = false;
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw invalid("unclosed group");
      this.pos++;
      if (c === ")" || c === ":") {
        if (negate && !any) throw invalid("flag negation without flag");
        if (c === ")" && !seen) throw invalid("empty flags");
        if (c === ")") {
          Object.assign(flags, changed);
          return null;
        }
        const inner = this.alternation(changed, depth + 1);
        this.close();
        return `(?:${inner})`;
      }
      if (c === "-") {
        if (negate) throw invalid("repeated flag negation");
        negate = true;
        any = false;
        continue;
      }
      if (!"imsUuxR".includes(c)) throw invalid(`unknown flag ${c}`);
      changed[c as keyof Flags] = !negate;
      any = true;
      seen = true;
    }
  }

  private groupName() {
    let name = "";
    while (!this.eof() && this.peek() !== ">") name += this.chars[this.pos++];
    if (this.eof() || !/^[A-Za-z_][A-Za-z0-9_.[\]]*$/.test(name)) throw invalid("group name");
    this.pos++; // >
  }

  private close() {
    if (this.peek() !== ")") throw invalid("unclosed group");
    this.pos++;
  }

  /** A code point in hex after `\x`, `\u` or `\U`. */
  private hexEscape(kind: string): number {
    let digits = "";
    if (this.peek() === "{") {
      this.pos++;
      while (!this.eof() && this.peek() !== "}") digits += this.chars[this.pos++];
      if (this.eof()) throw invalid("unclosed hex escape");
      this.pos++;
      if (!/^[0-9A-Fa-f]{1,8}$/.test(digits)) throw invalid("hex escape");
    } else {
      const width = kind === "x" ? 2 : kind === "u" ? 4 : 8;
      for (let i = 0; i < width; i++) {
        const d = this.chars[this.pos++];
        if (d === undefined || !/[0-9A-Fa-f]/.test(d)) throw invalid("hex escape");
        digits += d;
      }
    }
    const cp = parseInt(digits, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw invalid("not a Unicode scalar value");
    return cp;
  }

  /** An escape; in a class only what a class may hold. */
  private escape(flags: Flags, inClass: boolean): ClassItem {
    this.pos++; // backslash
    const c = this.chars[this.pos++];
    if (c === undefined) throw invalid("trailing backslash");
    const literal = (cp: number): ClassItem => ({ js: inClass ? hex(cp) : this.cased(hex(cp), flags), cp });
    const perl = (js: string): ClassItem => ({ js });
    const word = flags.u ? UNICODE_WORD : ASCII_WORD;
    switch (c) {
      case "a":
        return literal(0x07);
      case "f":
        return literal(0x0c);
      case "t":
        return literal(0x09);
      case "n":
        return literal(0x0a);
      case "r":
        return literal(0x0d);
      case "v":
        return literal(0x0b);
      case "x":
      case "u":
      case "U":
        return literal(this.hexEscape(c));
      case "d":
        return perl(flags.u ? "\\p{Nd}" : "[0-9]");
      case "D":
        return perl(flags.u ? "\\P{Nd}" : "[^0-9]");
      case "s":
        return perl(flags.u ? "\\p{White_Space}" : "[\\t\\n\\x0B\\f\\r ]");
      case "S":
        return perl(flags.u ? "\\P{White_Space}" : "[^\\t\\n\\x0B\\f\\r ]");
      case "w":
        return perl(word);
      case "W":
        return perl(`[^${word}]`);
      case "p":
      case "P": {
        let name: string;
        if (this.peek() === "{") {
          this.pos++;
          name = "";
          while (!this.eof() && this.peek() !== "}") name += this.chars[this.pos++];
          if (this.eof()) throw invalid("unclosed property");
          this.pos++;
        } else {
          name = this.chars[this.pos++] ?? "";
          if (name === "") throw invalid("property");
        }
        const js = property(name, c === "P");
        return { js: inClass ? js : this.cased(js, flags) };
      }
    }
    if (!inClass) {
      const notWord = `(?!${word})`;
      const afterWord = `(?<=${word})`;
      const notAfterWord = `(?<!${word})`;
      const beforeWord = `(?=${word})`;
      switch (c) {
        case "A":
          return perl("(?<![\\s\\S])");
        case "z":
          return perl("(?![\\s\\S])");
        case "b": {
          if (this.peek() === "{") {
            const close = this.chars.indexOf("}", this.pos);
            const kind = close === -1 ? "" : this.chars.slice(this.pos + 1, close).join("");
            const special: Record<string, string> = {
              start: `${notAfterWord}${beforeWord}`,
              end: `${afterWord}${notWord}`,
              "start-half": notAfterWord,
              "end-half": notWord,
            };
            if (special[kind] !== undefined) {
              this.pos = close + 1;
              return perl(special[kind]);
            }
            // Otherwise `\b` followed by a counted repetition, which Rust
            // refuses on an assertion only when it is not valid anyway.
          }
          return perl(`(?:${afterWord}${notWord}|${notAfterWord}${beforeWord})`);
        }
        case "B":
          return perl(`(?:${afterWord}${beforeWord}|${notAfterWord}${notWord})`);
        case "<":
          return perl(`${notAfterWord}${beforeWord}`);
        case ">":
          return perl(`${afterWord}${notWord}`);
      }
    }
    if (/[0-9]/.test(c)) throw invalid("back-references and octal escapes");
    if (isEscapable(c)) return literal(c.codePointAt(0)!);
    throw invalid(`unknown escape \\${c}`);
  }

  /** `[...]`, with ranges, nested classes, `[:ascii:]` classes and the set
   * operations `&&`, `--`, `~~`. */
  private bracketClass(flags: Flags): string {
    this.pos++; // [
    this.skipSpace(flags);
    let negated = false;
    if (this.peek() === "^") {
      this.pos++;
      negated = true;
      this.skipSpace(flags);
    }
    // Operands of the set operations, each a union of items.
    const operands: string[] = [];
    const operators: string[] = [];
    let union: string[] = [];
    let first = true;
    const closeUnion = () => {
      operands.push(`[${union.join("")}]`);
      union = [];
    };
    for (;;) {
      this.skipSpace(flags);
      const c = this.peek();
      if (c === undefined) throw invalid("unclosed class");
      if (c === "]" && !first) {
        this.pos++;
        break;
      }
      const op = c + (this.peek(1) ?? "");
      if (!first && (op === "&&" || op === "--" || op === "~~")) {
        this.pos += 2;
        closeUnion();
        operators.push(op);
        continue;
      }
      first = false;
      // An ASCII class: [:name:] or [:^name:].
      if (c === "[" && this.peek(1) === ":") {
        const rest = this.chars.slice(this.pos + 2).join("");
        const ascii = /^(\^?)([a-z]+):\]/.exec(rest);
        if (ascii && ASCII_CLASSES[ascii[2]]) {
          this.pos += 2 + ascii[0].length;
          const set = ASCII_CLASSES[ascii[2]];
          union.push(ascii[1] ? `[^${set.slice(1)}` : set);
          continue;
        }
        if (ascii) throw invalid(`unknown class [:${ascii[2]}:]`);
      }
      if (c === "[") {
        union.push(this.bracketClass(flags));
        continue;
      }
      const start = this.classAtom(flags);
      this.skipSpace(flags);
      if (this.peek() === "-" && this.peek(1) !== "]" && this.peek(1) !== "-" && start.cp !== undefined) {
        this.pos++;
        this.skipSpace(flags);
        const end = this.classAtom(flags);
        if (end.cp === undefined) throw invalid("class range");
        if (end.cp < start.cp) throw invalid("class range out of order");
        union.push(`${start.js}-${end.js}`);
        continue;
      }
      union.push(start.js);
    }
    closeUnion();
    let set = operands[0];
    operators.forEach((op, i) => {
      const rhs = operands[i + 1];
      set =
        op === "&&" ? `[${set}&&${rhs}]` : op === "--" ? `[${set}--${rhs}]` : `[[${set}--${rhs}][${rhs}--${set}]]`;
    });
    return negated ? `[^${set}]` : set;
  }

  private classAtom(flags: Flags): ClassItem {
    const c = this.peek()!;
    if (c === "\\") return this.escape(flags, true);
    this.pos++;
    return { js: hex(c.codePointAt(0)!), cp: c.codePointAt(0)! };
  }
}

const cache = new Map<string, { regex: RegExp } | { error: MatchResult }>();

/** The Rust regex `pattern` as a JavaScript RegExp, or why not. */
export function rustRegex(pattern: string): { regex: RegExp } | { error: MatchResult } {
  const known = cache.get(pattern);
  if (known) return known;
  let result: { regex: RegExp } | { error: MatchResult };
  try {
    const probe = new Translator(pattern, "flag");
    const source = probe.translate();
    if (!probe.insensitive || !probe.sensitive) {
      result = { regex: new RegExp(source, probe.insensitive ? "iv" : "v") };
    } else if (modifiersSupported) {
      result = { regex: new RegExp(new Translator(pattern, "wrap").translate(), "v") };
    } else {
      throw untestable("case-insensitive part");
    }
  } catch (err) {
    result = { error: err instanceof Refused ? err.result : { kind: "untestable", reason: String(err) } };
  }
  if (cache.size > 100) cache.clear();
  cache.set(pattern, result);
  return result;
}
