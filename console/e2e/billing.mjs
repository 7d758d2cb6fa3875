// Buying a plan in the console, in Debian's Chromium (./harness.mjs): the
// owner chooses a plan on the wallet page, pays it on the (local) Midtrans
// payment page, comes back to the wallet with the plan active and the
// order paid, and downloads its receipt; a top-up of too few points is
// refused before anything is sent.
//
// Run by tests/e2e/console_billing.rs, with a local Midtrans. Environment:
// WABLAST_CONSOLE_EMAIL and WABLAST_CONSOLE_PASSWORD (the owner), and the
// harness's.

import { journey, required } from "./harness.mjs";

const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");

function check(condition, what) {
  if (!condition) throw new Error(what);
}

await journey("billing", async ({ page, shot, heading, nav, signIn }) => {
  await signIn(email, password);
  await nav("Dompet").click();
  await heading("Dompet").waitFor();
  const buy = page.getByTestId("buy");
  await buy.getByText("Mode uji Midtrans (sandbox)").waitFor();
  check((await page.getByTestId("no-payments").count()) === 0, "payments on, yet the wallet says to ask the admin");

  // Points: too few is said at once; the price follows the count.
  const points = buy.getByRole("form", { name: "Beli poin" });
  await points.getByLabel("Jumlah poin").fill("5");
  await points.getByText("Beli 100 sampai 1.000.000 poin.").waitFor();
  check(await points.getByRole("button", { name: "Bayar poin" }).isDisabled(), "a top-up of 5 points can be paid");
  await points.getByLabel("Jumlah poin").fill("250");
  await points.getByTestId("topup-price").filter({ hasText: /25\.000/ }).waitFor();
  await shot("01-buy");

  // A plan: paid on Midtrans' page, back to the wallet.
  const plan = buy.getByRole("form", { name: "Beli paket" });
  await plan.getByLabel("Paket").selectOption({ index: 0 });
  await plan.getByRole("button", { name: "Bayar paket" }).click();
  await page.getByRole("heading", { name: "Midtrans (lokal)" }).waitFor();
  await shot("02-midtrans");
  await page.getByRole("button", { name: "Bayar sekarang" }).click();
  await heading("Dompet").waitFor();
  await page.getByTestId("plan").getByText("Paket Konsol").waitFor();
  const order = page.locator('[data-testid="order"][data-status="paid"]');
  await order.getByTestId("order-status").filter({ hasText: "Lunas" }).waitFor();
  await order.getByText("Paket Konsol (30 hari)").waitFor();
  await page.locator('[data-testid="transaction"][data-kind="allocation"]').first().waitFor();
  await shot("03-paid");

  // The receipt: a PDF saved from the API's answer.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    order.getByRole("button", { name: "Kwitansi (PDF)" }).click(),
  ]);
  check(/^receipt-[0-9a-f-]{36}\.pdf$/.test(download.suggestedFilename()), `the receipt is named ${download.suggestedFilename()}`);
  const path = await download.path();
  const { readFileSync } = await import("node:fs");
  check(readFileSync(path).subarray(0, 5).toString() === "%PDF-", "the receipt is not a PDF");
});
