// The console's browser journey, in Debian's Chromium through
// playwright-core, against a running wablast with the simulator.
//
// Run by tests/e2e/console.rs, which starts the system and answers this
// script's steps: a line `@@ <step> <json>` on stdout waits for one line
// on stdin (the test did its part: granted a plan, scanned the QR code).
//
// Environment: WABLAST_CONSOLE_URL (the system), WABLAST_CONSOLE_EMAIL and
// WABLAST_CONSOLE_PASSWORD (the owner to sign up), CHROMIUM (default
// /usr/bin/chromium), WABLAST_CONSOLE_ARTIFACTS (screenshots; default
// console/test-results). Fails on any console error of any page.

import { mkdirSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const base = required("WABLAST_CONSOLE_URL");
const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");
const artifacts = process.env.WABLAST_CONSOLE_ARTIFACTS ?? new URL("../test-results/", import.meta.url).pathname;
mkdirSync(artifacts, { recursive: true });
// A failure's screenshot is of this run only.
rmSync(`${artifacts}/failure.png`, { force: true });

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const replies = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Tells the test a step was reached and waits until it did its part. */
async function step(name, data = {}) {
  console.log(`@@ ${name} ${JSON.stringify(data)}`);
  const reply = await replies.next();
  if (reply.done || reply.value.trim() !== "ok") throw new Error(`the test answered ${JSON.stringify(reply.value)} to ${name}`);
}

const errors = [];
let expectedHttpErrors = 0;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in a container has no user namespace for the sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "id-ID" });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    // A request the journey makes fail on purpose (a short password).
    if (expectedHttpErrors > 0 && message.text().startsWith("Failed to load resource")) {
      expectedHttpErrors--;
      return;
    }
    const { url } = message.location();
    errors.push(`${page.url()}: ${message.text()}${url ? ` (${url})` : ""}`);
  });
  page.on("pageerror", (error) => errors.push(`${page.url()}: ${error.message}`));

  const shot = async (name) => {
    await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
    console.log(`screenshot ${name}.png`);
  };
  const heading = (name) => page.getByRole("heading", { level: 1, name });

  // A stranger lands on the sign-in page, in Indonesian.
  await page.goto(base);
  await page.waitForURL(/\/login$/);
  await heading("Masuk").waitFor();
  await shot("01-sign-in");

  // Sign up: the API's error shows next to the field it concerns.
  await page.getByRole("link", { name: "Daftar" }).click();
  await heading("Daftar").waitFor();
  await page.getByLabel("Nama usaha (opsional)").fill("Toko Budi");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Kata sandi").fill("pendek");
  expectedHttpErrors = 1;
  await page.getByRole("button", { name: "Buat akun" }).click();
  const passwordField = page.getByLabel("Kata sandi");
  await page.getByText("Kata sandi minimal 8 karakter.", { exact: true }).last().waitFor();
  if ((await passwordField.getAttribute("aria-invalid")) !== "true") throw new Error("the password field is not marked invalid");
  const describedBy = await passwordField.getAttribute("aria-describedby");
  const said = await page.locator(`[id="${describedBy}"]`).textContent();
  if (said !== "Kata sandi minimal 8 karakter.") throw new Error(`the password field is described by ${JSON.stringify(said)}`);
  await shot("02-sign-up-error");
  await passwordField.fill(password);
  await page.getByRole("button", { name: "Buat akun" }).click();

  // The new owner's dashboard: no number yet, no plan yet; the stream is live.
  await heading("Dasbor").waitFor();
  await page.getByText("Belum ada nomor WhatsApp").waitFor();
  await page.locator('[data-stream="open"]').waitFor();
  // Proves later that nothing reloaded the page.
  await page.evaluate(() => {
    window.__journey = "still here";
  });
  await shot("03-dashboard-new");

  // The admin grants a plan: the points appear without a reload.
  await step("signed-up", { email });
  await page.getByTestId("points-available").filter({ hasText: "1.000" }).waitFor();
  await page.getByTestId("plan").getByText("Paket Konsol").waitFor();

  // Numbers: the empty state says what to do; add one by QR.
  await page.getByRole("navigation").getByRole("link", { name: "Nomor" }).click();
  await heading("Nomor WhatsApp").waitFor();
  await page.getByText("Belum ada nomor", { exact: true }).waitFor();
  await shot("04-numbers-empty");
  await page.getByRole("button", { name: "Tambah nomor" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Nama nomor").fill("CS Jakarta 1");
  await dialog.getByRole("button", { name: "Tambah dan tautkan" }).click();
  await dialog.getByTestId("qr").waitFor();
  await dialog.getByTestId("qr-countdown").filter({ hasText: /berlaku \d+ detik/ }).waitFor();
  await shot("05-numbers-qr");
  const sessionId = await dialog.getByTestId("link-panel").getAttribute("data-session-id");

  // The phone scans it (the simulator, through the API): ready, live.
  await step("qr-shown", { session_id: sessionId });
  await dialog.locator('[data-status="ready"]').waitFor({ timeout: 30_000 });
  await dialog.getByText("tertaut dan siap mengirim").waitFor();
  await dialog.getByRole("button", { name: "Selesai" }).click();
  const card = page.locator(`[data-testid="number-card"][data-session-id="${sessionId}"]`);
  await card.locator('[data-status="ready"]').waitFor();
  await card.getByText("+6281200000001").waitFor();
  if ((await page.evaluate(() => window.__journey)) !== "still here") throw new Error("the page reloaded");
  await shot("06-numbers-ready");

  // Settings: a daily limit of its own.
  await card.getByRole("button", { name: "Pengaturan" }).click();
  const limit = dialog.getByLabel("Batas kirim harian (opsional)");
  await limit.fill("40");
  await dialog.getByRole("button", { name: "Simpan" }).click();
  await card.getByText("Terkirim hari ini: 0 / 40").waitFor();

  // The dashboard shows the number, its sends against the limit, the points.
  await page.getByRole("navigation").getByRole("link", { name: "Dasbor" }).click();
  await heading("Dasbor").waitFor();
  const row = page.locator(`li[data-session-id="${sessionId}"]`);
  await row.getByText("+6281200000001").waitFor();
  await row.locator('[data-status="ready"]').waitFor();
  await page.getByText("1 dari 1 siap mengirim").waitFor();
  await page.getByTestId("points-available").filter({ hasText: "1.000" }).waitFor();
  await shot("07-dashboard");

  // On a phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("08-dashboard-phone");
  await page.getByRole("navigation").getByRole("link", { name: "Nomor" }).click();
  await card.locator('[data-status="ready"]').waitFor();
  await shot("09-numbers-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // Several at once: select it and stop it.
  await card.getByRole("checkbox", { name: "Pilih CS Jakarta 1" }).check();
  await page.getByRole("group", { name: "Tindakan untuk nomor terpilih" }).getByRole("button", { name: "Hentikan" }).click();
  await page.getByText("1 berhasil, 0 gagal.").waitFor();
  await card.locator('[data-status="idle"]').waitFor();

  // English, kept across a reload (the session too).
  await page.getByRole("button", { name: "Ganti bahasa ke English" }).click();
  await heading("WhatsApp numbers").waitFor();
  await page.reload();
  await heading("WhatsApp numbers").waitFor();
  await card.getByText("Stopped").waitFor();
  await shot("10-numbers-english");

  await step("done");
} catch (error) {
  failed = true;
  console.error(`journey failed: ${error.stack ?? error}`);
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages[0]) await pages[0].screenshot({ path: `${artifacts}/failure.png`, fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
if (errors.length > 0) {
  console.error(`console errors:\n${errors.join("\n")}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
