// The signed-in user's access token, kept in localStorage so that every tab
// shares it (and a sign-out in one signs out all). It only ever travels in
// an Authorization header.

import { useSyncExternalStore } from "react";

const KEY = "wablast.auth";

interface Stored {
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const listeners = new Set<() => void>();
let current: Stored | null = read();

function read(): Stored | null {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? "null") as Stored | null;
    return stored && typeof stored.token === "string" && stored.expiresAt > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

function changed() {
  for (const listener of listeners) listener();
}

if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    if (event.key === KEY) {
      current = read();
      changed();
    }
  });
}

/** When a JWT expires, from its `exp` claim (milliseconds), if it says. */
export function tokenExpiry(token: string): number | null {
  try {
    const payload = token.split(".")[1];
    const json = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as { exp?: number };
    return typeof json.exp === "number" ? json.exp * 1000 : null;
  } catch {
    return null;
  }
}

/** The token, while it is valid. */
export function getToken(): string | null {
  if (current && current.expiresAt <= Date.now()) signOut();
  return current?.token ?? null;
}

export function signIn(token: string, expiresInSeconds?: number) {
  const expiresAt =
    expiresInSeconds !== undefined
      ? Date.now() + expiresInSeconds * 1000
      : (tokenExpiry(token) ?? Date.now() + 3_600_000);
  current = { token, expiresAt };
  localStorage.setItem(KEY, JSON.stringify(current));
  changed();
}

export function signOut() {
  if (!current) return;
  current = null;
  localStorage.removeItem(KEY);
  changed();
}

function subscribe(listener: () => void) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The token, re-rendering on sign-in and sign-out. */
export function useToken(): string | null {
  return useSyncExternalStore(subscribe, () => current?.token ?? null);
}
