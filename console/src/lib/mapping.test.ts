import { describe, expect, it } from "vitest";
import { buildMapping, guessMapping, isVariableName, mappingProblems } from "./mapping";

describe("guessing the mapping", () => {
  it("finds the columns the API would take by default, case-insensitively", () => {
    const header = ["No_HP", "Nama", "Persetujuan", "kota", "Tanggal Lahir"];
    expect(guessMapping(header)).toEqual({ phone: "No_HP", name: "Nama", consent: "Persetujuan", variables: ["kota"] });
  });

  it("takes a likely phone and consent column when none has the default name", () => {
    expect(guessMapping(["Nomor HP", "Setuju?", "toko"])).toEqual({ phone: "Nomor HP", name: "", consent: "Setuju?", variables: ["toko"] });
  });

  it("leaves what it cannot find unchosen", () => {
    expect(guessMapping(["a", "b"])).toEqual({ phone: "", name: "", consent: "", variables: ["a", "b"] });
  });
});

describe("building the mapping sent to the API", () => {
  const header = ["No HP", "Nama", "Setuju", "kota", "produk"];

  it("names every column and keeps variables in the file's order", () => {
    const choice = { phone: "No HP", name: "Nama", consent: "Setuju", variables: ["produk", "kota"] };
    expect(buildMapping(choice, header)).toEqual({ phone: "No HP", name: "Nama", consent: "Setuju", variables: ["kota", "produk"] });
  });

  it("leaves out an unchosen name and variables already used for something else", () => {
    const choice = { phone: "No HP", name: "", consent: "Setuju", variables: ["No HP", "kota"] };
    expect(buildMapping(choice, header)).toEqual({ phone: "No HP", consent: "Setuju", variables: ["kota"] });
  });

  it("sends no variables when none are ticked (not the API's default of all)", () => {
    expect(buildMapping({ phone: "No HP", name: "", consent: "Setuju", variables: [] }, header).variables).toEqual([]);
  });
});

describe("problems with a mapping", () => {
  it("needs a phone and a consent column, each a different one", () => {
    expect(mappingProblems({ phone: "", name: "", consent: "", variables: [] })).toEqual({
      phone: "phone_missing",
      consent: "consent_missing",
    });
    expect(mappingProblems({ phone: "a", name: "a", consent: "a", variables: [] })).toEqual({
      consent: "same_column",
      name: "same_column",
    });
    expect(mappingProblems({ phone: "a", name: "b", consent: "c", variables: ["kota"] })).toEqual({});
  });

  it("refuses variables that no template can name", () => {
    expect(isVariableName("kota")).toBe(true);
    expect(isVariableName("_x1")).toBe(true);
    expect(isVariableName("Tanggal Lahir")).toBe(false);
    expect(isVariableName("1st")).toBe(false);
    expect(isVariableName("Name")).toBe(false);
    expect(mappingProblems({ phone: "a", name: "", consent: "c", variables: ["no hp"] })).toEqual({ variables: "bad_variable" });
  });
});
