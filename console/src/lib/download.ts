// A file the API answers behind authentication, saved by the browser: a
// plain link cannot carry the Authorization header (and a token must not
// travel in a URL), so it is fetched, kept as a Blob and handed to a
// temporary link to an object URL.

import { ApiError } from "../api/client";
import { getToken, signOut } from "./auth";

/** The file name a `Content-Disposition` header gives, if any. */
export function filenameOf(disposition: string | null): string | null {
  if (!disposition) return null;
  const encoded = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1].trim());
    } catch {
      // Fall through to the plain name.
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(disposition);
  const name = plain ? (plain[2] ?? plain[1]).trim() : "";
  // Only a name, never a path.
  return name ? name.replace(/[\\/]/g, "_") : null;
}

/** Downloads `path` as a file named as the API says, else `fallback`. */
export async function download(path: string, fallback: string): Promise<string> {
  const token = getToken();
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(path, { headers });
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
    if (response.status === 401 && token) signOut();
    throw new ApiError(response.status, body?.error?.code ?? "internal", body?.error?.message ?? response.statusText);
  }
  const blob = await response.blob();
  const name = filenameOf(response.headers.get("content-disposition")) ?? fallback;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has started the download by the time this runs.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}
