// A look at an uploaded contact file before it is sent: its header and
// first rows, read in the browser only to show them and offer the columns
// for mapping. The API reads the whole file itself. The parsers are loaded
// when a file is chosen, not with the console.

export interface Preview {
  format: "csv" | "xlsx";
  header: string[];
  /** The first data rows, each as long as the header. */
  rows: string[][];
  /** Data rows read (blank rows not counted). */
  total: number;
}

export const PREVIEW_ROWS = 5;

export class PreviewError extends Error {
  constructor(readonly reason: "unsupported" | "empty" | "unreadable") {
    super(reason);
  }
}

/** Which reader a file needs, by its name. */
export function formatOf(filename: string): "csv" | "xlsx" | null {
  const lower = filename.toLowerCase();
  if (lower.endsWith(".csv") || lower.endsWith(".txt")) return "csv";
  if (lower.endsWith(".xlsx")) return "xlsx";
  return null;
}

/** A cell as text, the way a person reads it (6281234567890, not 6.28e12). */
export function cellText(cell: unknown): string {
  if (cell === null || cell === undefined) return "";
  if (typeof cell === "number") return Number.isInteger(cell) ? cell.toFixed(0) : String(cell);
  if (cell instanceof Date) return cell.toISOString().slice(0, 10);
  return String(cell).trim();
}

/** Header and first rows of a sheet's cells; blank rows are skipped. */
export function toPreview(format: Preview["format"], cells: readonly (readonly unknown[])[], max = PREVIEW_ROWS): Preview {
  const rows = cells.map((row) => row.map(cellText)).filter((row) => row.some((cell) => cell !== ""));
  if (rows.length === 0) throw new PreviewError("empty");
  const [first, ...data] = rows;
  // Trailing unnamed columns are dropped; data rows are cut or padded to fit.
  let width = first.length;
  while (width > 0 && first[width - 1] === "") width--;
  if (width === 0) throw new PreviewError("empty");
  const header = first.slice(0, width);
  const fit = (row: string[]) => Array.from({ length: width }, (_, i) => row[i] ?? "");
  return { format, header, rows: data.slice(0, max).map(fit), total: data.length };
}

/** CSV text (`,` `;` or tab separated, as the API reads it) as a preview. */
export async function previewCsv(text: string, max = PREVIEW_ROWS): Promise<Preview> {
  const { default: Papa } = await import("papaparse");
  const parsed = Papa.parse<string[]>(text.replace(/^\uFEFF/, ""), {
    delimitersToGuess: [",", ";", "\t"],
    skipEmptyLines: "greedy",
  });
  if (parsed.data.length === 0 && parsed.errors.length > 0) throw new PreviewError("unreadable");
  return toPreview("csv", parsed.data, max);
}

/** A chosen file as a preview. */
export async function previewFile(file: File, max = PREVIEW_ROWS): Promise<Preview> {
  const format = formatOf(file.name);
  if (!format) throw new PreviewError("unsupported");
  try {
    if (format === "csv") return await previewCsv(await file.text(), max);
    const { readSheet } = await import("read-excel-file/browser");
    return toPreview("xlsx", (await readSheet(file)) as unknown[][], max);
  } catch (err) {
    if (err instanceof PreviewError) throw err;
    throw new PreviewError("unreadable");
  }
}
