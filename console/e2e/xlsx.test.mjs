import { readSheet } from "read-excel-file/universal";
import { describe, expect, it } from "vitest";
import { toPreview } from "../src/lib/preview";
import { xlsx } from "./xlsx.mjs";

describe("the journey's XLSX file", () => {
  it("reads back as the rows it was made of, previewed like the console does", async () => {
    const bytes = xlsx([
      ["No HP", "Nama", "Setuju"],
      ["0812-3456-7890", "Budi & Sari", "ya"],
      ["+62 813 1111 2222", "<Andi>", "tidak"],
    ]);
    const preview = toPreview("xlsx", await readSheet(new Blob([bytes])));
    expect(preview.header).toEqual(["No HP", "Nama", "Setuju"]);
    expect(preview.rows).toEqual([
      ["0812-3456-7890", "Budi & Sari", "ya"],
      ["+62 813 1111 2222", "<Andi>", "tidak"],
    ]);
    expect(preview.total).toBe(2);
  });
});
