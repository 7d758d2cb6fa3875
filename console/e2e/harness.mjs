// What every browser journey of the console shares: Debian's Chromium
// through playwright-core, the steps a Rust test answers, screenshots,
// and no console error allowed on any page.
//
// A journey is run by a test in tests/e2e/console*.rs, which starts the
// system and answers the journey's steps: a line `@@ <step> <json>` on
// stdout waits for one line `ok` on stdin (the test did its part).
//
// Environment: WABLAST_CONSOLE_URL (the system), CHROMIUM (default
// /usr/bin/chromium), WABLAST_CONSOLE_ARTIFACTS (screenshots; default
// console/test-results/<journey>), plus what each journey requires.

import { mkdirSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

/** The environment variable `name`, which must be set. */
export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const replies = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Tells the test a step was reached and waits until it did its part. */
/**
 * Waits until `locator`'s element has the focus: the variable buttons give
 * it back to their field on the next frame, and typing before then would
 * land elsewhere.
 */
export async function focusBack(locator) {
  await locator.evaluate(
    (el) =>
      new Promise((resolve) =>
        (function check() {
          if (document.activeElement === el) resolve();
          else requestAnimationFrame(check);
        })(),
      ),
  );
}

export async function step(name, data = {}) {
  console.log(`@@ ${name} ${JSON.stringify(data)}`);
  const reply = await replies.next();
  if (reply.done || reply.value.trim() !== "ok") throw new Error(`the test answered ${JSON.stringify(reply.value)} to ${name}`);
}

/**
 * Runs the journey `name` in a fresh browser: `body` gets the page and its
 * helpers. Exits the process: 0 when the journey ended and no page logged
 * a console error, 1 otherwise (with `failure.png` of the moment it failed).
 */
export async function journey(name, body) {
  const base = required("WABLAST_CONSOLE_URL");
  const artifacts =
    process.env.WABLAST_CONSOLE_ARTIFACTS ?? new URL(`../test-results/${name}/`, import.meta.url).pathname;
  mkdirSync(artifacts, { recursive: true });
  // A failure's screenshot is of this run only.
  rmSync(`${artifacts}/failure.png`, { force: true });

  const errors = [];
  let expectedHttpErrors = 0;
  /** Per page (route): how long each visit took to be usable, in ms. */
  const readyTimes = new Map();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Root in a container has no user namespace for the sandbox.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  let failed = false;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "id-ID" });
    await context.addInitScript(timePages);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on("console", (message) => {
      const ready = message.type() === "info" && /^wablast-page-ready (\S+) (\d+)$/.exec(message.text());
      if (ready) {
        // Ids in a path are one page: /campaigns/:id.
        const route = ready[1].replace(/\/[0-9a-f]{8}-[0-9a-f-]{27,}/g, "/:id").replace(/\/(%2B|\+)?\d{6,}/g, "/:peer");
        readyTimes.set(route, [...(readyTimes.get(route) ?? []), Number(ready[2])]);
        return;
      }
      if (message.type() !== "error") return;
      // A request the journey makes fail on purpose.
      if (expectedHttpErrors > 0 && message.text().startsWith("Failed to load resource")) {
        expectedHttpErrors--;
        return;
      }
      const { url } = message.location();
      errors.push(`${page.url()}: ${message.text()}${url ? ` (${url})` : ""}`);
    });
    page.on("pageerror", (error) => errors.push(`${page.url()}: ${error.message}`));

    const helpers = {
      base,
      page,
      dialog: page.getByRole("dialog"),
      /** A full-page screenshot kept as a test artifact. */
      shot: async (shotName) => {
        await page.screenshot({ path: `${artifacts}/${shotName}.png`, fullPage: true });
        console.log(`screenshot ${name}/${shotName}.png`);
      },
      /** The page's main heading. */
      heading: (text) => page.getByRole("heading", { level: 1, name: text }),
      /** A link of the main navigation. */
      nav: (text) => page.getByRole("navigation").getByRole("link", { name: text }),
      /** The next `n` failed requests are made to fail on purpose. */
      expectHttpErrors: (n) => {
        expectedHttpErrors = n;
      },
      /** Signs in at the sign-in page as an existing owner. */
      signIn: async (email, password) => {
        await page.goto(base);
        await page.waitForURL(/\/login$/);
        await page.getByLabel("Email").fill(email);
        await page.getByLabel("Kata sandi").fill(password);
        await page.getByRole("button", { name: "Masuk" }).click();
        await page.getByRole("heading", { level: 1, name: "Dasbor" }).waitFor();
      },
      /** Fails unless the page was not reloaded since `markPage()`. */
      assertNotReloaded: async () => {
        if ((await page.evaluate(() => window.__journey)) !== "still here") throw new Error("the page reloaded");
      },
      markPage: () =>
        page.evaluate(() => {
          window.__journey = "still here";
        }),
    };
    await body(helpers);
    await step("done");
  } catch (error) {
    failed = true;
    console.error(`journey ${name} failed: ${error.stack ?? error}`);
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: `${artifacts}/failure.png`, fullPage: true }).catch(() => {});
  } finally {
    await browser.close();
  }
  // A figure, not a test: how soon each page was usable (see timePages).
  for (const [route, times] of [...readyTimes].sort()) {
    console.log(`page ready: ${route} max ${Math.max(...times)} ms over ${times.length} visit(s)`);
  }
  if (errors.length > 0) {
    console.error(`console errors:\n${errors.join("\n")}`);
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}

/**
 * Runs in every page before its own scripts: tells (a console.info line)
 * how long each page took to be usable, from the navigation (or the
 * client-side route change) to its heading shown with no "loading" status
 * left on it.
 */
function timePages() {
  let path = location.pathname;
  let started = 0;
  let done = false;
  // The page rendered something since the route changed (before that, the
  // heading on screen is the last page's).
  let rendered = true;
  const loading = new Set(["Memuat…", "Loading…"]);
  const check = () => {
    if (done || !rendered || !document.querySelector("h1")) return;
    for (const status of document.querySelectorAll('[role="status"]')) {
      if (loading.has(status.textContent?.trim() ?? "")) return;
    }
    done = true;
    console.info(`wablast-page-ready ${path} ${Math.round(performance.now() - started)}`);
  };
  const moved = () => {
    if (location.pathname === path) return;
    path = location.pathname;
    started = performance.now();
    done = false;
    rendered = false;
  };
  for (const method of ["pushState", "replaceState"]) {
    const original = history[method];
    history[method] = function (...args) {
      const result = original.apply(this, args);
      moved();
      return result;
    };
  }
  addEventListener("popstate", moved);
  new MutationObserver(() => {
    rendered = true;
    check();
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}
