// The one way the console calls the REST API v1: JSON in and out, the
// bearer token attached, errors turned into ApiError from the API's error
// shape `{"error": {code, message, details}}`.

import { getToken, signOut } from "../lib/auth";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  /** The request field the error is about (`details.field`), if any. */
  get field(): string | undefined {
    return typeof this.details.field === "string" ? this.details.field : undefined;
  }
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  body?: unknown;
  signal?: AbortSignal;
  /** A log position (`events:123`) the read must reflect (`X-Wablast-Position`). */
  after?: string;
  /** Makes a retry of the same write answer the first one (`Idempotency-Key`). */
  idempotencyKey?: string;
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const token = getToken();
  const headers: Record<string, string> = { accept: "application/json" };
  // A form (a file upload) sets its own multipart content type.
  const form = options.body instanceof FormData;
  if (options.body !== undefined && !form) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.after) headers["x-wablast-position"] = options.after;
  if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? "GET",
      headers,
      body: options.body === undefined ? undefined : form ? (options.body as FormData) : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (response.status === 204) return undefined as T;
  const data: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)
      ?.error;
    // A token the server no longer takes (expired, server restarted with
    // another secret): back to the sign-in page.
    if (response.status === 401 && token) signOut();
    throw new ApiError(
      response.status,
      error?.code ?? "internal",
      error?.message ?? response.statusText,
      error?.details ?? {},
    );
  }
  return data as T;
}
