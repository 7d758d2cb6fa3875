import { describe, expect, it } from "vitest";
import { cellText, formatOf, previewCsv, PreviewError, toPreview } from "./preview";

describe("previewing a CSV file", () => {
  it("reads the header and the first rows of messy Indonesian numbers", async () => {
    const csv = "No HP,Nama,Setuju,kota\n0812-3456-7890,Budi,ya,Bandung\n+62 813 1111 2222,\"Sari, S.E.\",ya,Jakarta\n\n62814000111,Andi,ya,Medan\nbukan nomor,Tono,ya,Solo\n";
    const preview = await previewCsv(csv, 3);
    expect(preview.format).toBe("csv");
    expect(preview.header).toEqual(["No HP", "Nama", "Setuju", "kota"]);
    expect(preview.rows).toEqual([
      ["0812-3456-7890", "Budi", "ya", "Bandung"],
      ["+62 813 1111 2222", "Sari, S.E.", "ya", "Jakarta"],
      ["62814000111", "Andi", "ya", "Medan"],
    ]);
    expect(preview.total).toBe(4);
  });

  it("reads semicolon-separated files with a byte order mark, as Excel saves them", async () => {
    const preview = await previewCsv("\uFEFFphone;consent\r\n0812 3456 7890;ya\r\n");
    expect(preview.header).toEqual(["phone", "consent"]);
    expect(preview.rows).toEqual([["0812 3456 7890", "ya"]]);
  });

  it("says when there is nothing to read", async () => {
    await expect(previewCsv("\n\n")).rejects.toBeInstanceOf(PreviewError);
  });
});

describe("previewing sheet cells", () => {
  it("shows numbers as typed, not in scientific notation, and fits rows to the header", () => {
    const preview = toPreview("xlsx", [
      ["phone", "name", "consent", null],
      [6281234567890, "Budi", true],
      [null, null, null],
      [6281300001111, "Sari", "ya", "extra"],
    ]);
    expect(preview.header).toEqual(["phone", "name", "consent"]);
    expect(preview.rows).toEqual([
      ["6281234567890", "Budi", "true"],
      ["6281300001111", "Sari", "ya"],
    ]);
    expect(preview.total).toBe(2);
  });

  it("writes other cells as text", () => {
    expect(cellText(12.5)).toBe("12.5");
    expect(cellText(new Date("2026-01-02T00:00:00Z"))).toBe("2026-01-02");
    expect(cellText("  x ")).toBe("x");
    expect(cellText(undefined)).toBe("");
  });

  it("knows the formats by file name", () => {
    expect(formatOf("Pelanggan.XLSX")).toBe("xlsx");
    expect(formatOf("kontak.csv")).toBe("csv");
    expect(formatOf("kontak.xls")).toBeNull();
  });
});
