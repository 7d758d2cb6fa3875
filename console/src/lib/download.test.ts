import { describe, expect, it } from "vitest";
import { filenameOf } from "./download";

describe("a download's file name", () => {
  it("is the one Content-Disposition gives", () => {
    expect(filenameOf('attachment; filename="campaign-1.csv"')).toBe("campaign-1.csv");
    expect(filenameOf("attachment; filename=plain.csv")).toBe("plain.csv");
    expect(filenameOf("attachment; filename*=UTF-8''promo%20lebaran.csv")).toBe("promo lebaran.csv");
  });

  it("is never a path, and absent when not said", () => {
    expect(filenameOf('attachment; filename="../../etc/x.csv"')).toBe(".._.._etc_x.csv");
    expect(filenameOf(null)).toBeNull();
    expect(filenameOf("attachment")).toBeNull();
  });
});
