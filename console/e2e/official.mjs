// The console's official numbers, in Debian's Chromium (./harness.mjs),
// against a running wablast and a local Graph API: an owner adds a Cloud
// API number with its Meta credentials (a refused ID first), reads the
// callback URL and verify token to give Meta, syncs the number's
// templates (asked for the account ID first), and builds a campaign whose
// template step picks the approved template, fills its parameters with
// the list's variables and previews it filled per recipient; the campaign
// completes.
//
// Run by tests/e2e/console_official.rs. Environment: WABLAST_CONSOLE_EMAIL
// and WABLAST_CONSOLE_PASSWORD (the owner), WABLAST_GRAPH_API (the local
// Graph API, with its version), WABLAST_GRAPH_NUMBER_ID, WABLAST_GRAPH_TOKEN,
// WABLAST_GRAPH_APP_SECRET, WABLAST_GRAPH_WABA_ID, and the harness's.

import { focusBack, journey, required, step } from "./harness.mjs";

const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");
const graph = required("WABLAST_GRAPH_API");
const numberId = required("WABLAST_GRAPH_NUMBER_ID");
const token = required("WABLAST_GRAPH_TOKEN");
const appSecret = required("WABLAST_GRAPH_APP_SECRET");
const wabaId = required("WABLAST_GRAPH_WABA_ID");

function expect(condition, what) {
  if (!condition) throw new Error(what);
}

await journey("official", async ({ page, dialog, shot, heading, nav, signIn, expectHttpErrors }) => {
  await signIn(email, password);

  // — The number: added with the Meta app's credentials. —
  await nav("Nomor").click();
  await heading("Nomor WhatsApp").waitFor();
  await page.getByRole("button", { name: "Tambah nomor" }).first().click();
  await dialog.getByRole("radio", { name: "Nomor resmi WhatsApp Business (Cloud API Meta)" }).check();
  const form = dialog.getByTestId("official-form");
  await form.getByLabel("Nama nomor").fill("WA Resmi");
  const numberField = form.getByLabel("ID nomor telepon");
  await numberField.fill("+62 811-0000-0002");
  await form.getByLabel("Token akses").fill(token);
  await form.getByLabel("Rahasia aplikasi (app secret)").fill(appSecret);
  const verifyToken = await form.getByLabel("Token verifikasi webhook").inputValue();
  expect(/^wablast-[0-9a-f]{24}$/.test(verifyToken), `the verify token offered is ${JSON.stringify(verifyToken)}`);
  await form.getByText("Lanjutan").click();
  await form.getByLabel("Alamat Graph API (opsional)").fill(graph);
  await shot("01-official-form");
  // A phone number where Meta's number ID goes: said next to the field.
  expectHttpErrors(1);
  await form.getByRole("button", { name: "Tambah nomor resmi" }).click();
  await form.getByText("ID nomor telepon berupa angka: ID nomor di Meta, bukan nomor teleponnya.").waitFor();
  expect((await numberField.getAttribute("aria-invalid")) === "true", "the number ID is not marked invalid");
  await numberField.fill(numberId);
  await form.getByRole("button", { name: "Tambah nomor resmi" }).click();

  // Where Meta sends its events, and the number ready once Meta knows it.
  const panel = dialog.getByTestId("official-panel");
  await panel.getByText("Nomor terhubung ke Meta dan siap mengirim.").waitFor({ timeout: 30_000 });
  const callback = (await panel.getByTestId("official-callback").textContent()) ?? "";
  const match = /\/hooks\/cloud\/([0-9a-f-]{36})$/.exec(callback);
  expect(match && callback.startsWith(new URL(page.url()).origin), `the callback URL shown is ${JSON.stringify(callback)}`);
  await panel.getByText(verifyToken).waitFor();
  await shot("02-official-webhook");
  await step("added", { session_id: match[1], verify_token: verifyToken });
  await panel.getByRole("button", { name: "Tutup" }).click();

  // — Its templates: synced from Meta, the account's ID asked for first. —
  const card = page.getByTestId("number-card").filter({ hasText: "WA Resmi" });
  await card.getByText("Nomor resmi (Cloud API)").waitFor();
  await card.getByRole("button", { name: "Template" }).click();
  const templates = dialog.getByTestId("templates-panel");
  await templates.getByText("Belum ada template. Ambil dari Meta.").waitFor();
  expectHttpErrors(1);
  await templates.getByRole("button", { name: "Ambil dari Meta" }).click();
  await templates.getByText("Isi ID akun WhatsApp Business (angka) untuk mengambil template.").waitFor();
  await templates.getByLabel("ID akun WhatsApp Business (WABA)").fill(wabaId);
  await templates.getByRole("button", { name: "Ambil dari Meta" }).click();
  await templates.getByText("3 template diambil dari Meta.").waitFor();
  const approved = templates.locator('[data-template="order_update"]');
  await approved.getByText("Bisa dikirim · 2 parameter").waitFor();
  await approved.getByText("Halo {{1}}, pesanan {{2}} siap").waitFor();
  await templates.locator('[data-template="promo_baru"]').getByText("Belum bisa dikirim: status di Meta PENDING").waitFor();
  await templates.locator('[data-template="promo_gambar"]').getByText("Bisa dikirim · 1 parameter").waitFor();
  await shot("03-official-templates");
  await dialog.getByRole("button", { name: "Tutup" }).click();

  // — A campaign: the official sender sends the approved template. —
  await nav("Kampanye").click();
  await heading("Kampanye").waitFor();
  await page.getByRole("link", { name: "Buat kampanye" }).first().click();
  await heading("Kampanye baru").waitFor();
  const atStep = (name) => page.locator(`form[data-step="${name}"]`).waitFor();
  const next = page.getByRole("button", { name: "Lanjut" });
  // No template step while no official number sends.
  expect((await page.getByRole("listitem").filter({ hasText: "Template resmi" }).count()) === 0, "a template step without an official sender");
  await page.getByLabel("Nama kampanye").fill("Status Pesanan");
  await page.getByRole("radio", { name: /Pelanggan Bandung/ }).check();
  await next.click();
  await atStep("message");
  await page.getByLabel("Isi pesan").fill("Halo {{name}}, pesanan Anda siap.");
  await page.locator('[data-testid="preview-sample"]').first().waitFor();
  await next.click();
  await atStep("media");
  await next.click();
  await atStep("senders");
  await page.getByRole("checkbox", { name: /^WA Resmi/ }).check();
  await page.getByRole("listitem").filter({ hasText: "Template resmi" }).waitFor();
  await next.click();

  // The template step: chosen, its two parameters filled per recipient.
  await atStep("template");
  await next.click();
  await page.getByText("Pilih template yang akan dikirim nomor resmi.").waitFor();
  expect((await page.getByRole("radio", { name: /promo_baru/ }).count()) === 0, "a template Meta has not approved is offered");
  // An image-header template asks for its picture before anything else.
  await page.getByRole("radio", { name: /promo_gambar/ }).check();
  await page.getByLabel("Parameter {{1}}").fill("{{name}}");
  await next.click();
  await page.getByText("Unggah lampiran judul template ini.").waitFor();
  const onePixelPng = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "base64",
  );
  await page.getByRole("button", { name: "Gambar judul (JPEG atau PNG)" }).setInputFiles({ name: "promo.png", mimeType: "image/png", buffer: onePixelPng });
  await page.getByTestId("header-media").getByText("promo.png").waitFor();
  await page.getByTestId("template-preview-official").getByText("Diskon untuk Budi").waitFor();
  await page.getByRole("radio", { name: /order_update/ }).check();
  const first = page.getByLabel("Parameter {{1}}");
  const second = page.getByLabel("Parameter {{2}}");
  await next.click();
  await page.getByText("Isi parameter ini.").waitFor();
  expect((await first.getAttribute("aria-invalid")) === "true", "the empty parameter is not marked invalid");
  await first.click();
  await page.getByRole("button", { name: "{{name}}" }).click();
  await focusBack(first);
  await second.fill("ORD-");
  await page.getByRole("button", { name: "{{kota}}" }).click();
  expect((await first.inputValue()) === "{{name}}", `parameter 1 is ${await first.inputValue()}`);
  expect((await second.inputValue()) === "ORD-{{kota}}", `parameter 2 is ${await second.inputValue()}`);
  const filled = page.getByTestId("template-preview-official");
  await filled.locator('[data-phone="+6281234567890"]').getByText("Halo Budi, pesanan ORD-Bandung siap").waitFor();
  await filled.locator('[data-phone="+6281311112222"]').getByText("Halo Sari, pesanan ORD-Jakarta siap").waitFor();
  await shot("04-wizard-template");
  await next.click();

  await atStep("throttle");
  await page.getByLabel("Jeda minimum (detik)").fill("0");
  await page.getByLabel("Jeda maksimum (detik)").fill("0.5");
  await next.click();
  await atStep("schedule");
  await next.click();
  await atStep("review");
  const review = page.getByTestId("review-template");
  await review.getByText("order_update · id").waitFor();
  await review.getByText("Halo Budi, pesanan ORD-Bandung siap").waitFor();
  await shot("05-wizard-review");
  await page.getByRole("button", { name: "Mulai kampanye" }).click();

  await page.waitForURL(/\/campaigns\/[0-9a-f-]{36}$/);
  await heading("Status Pesanan").waitFor();
  await step("started", { campaign_id: page.url().split("/").pop() });
  await page.getByText("order_update · id · {{name}} | ORD-{{kota}}").waitFor();
  await page.locator('[data-campaign-status="completed"]').waitFor({ timeout: 60_000 });
  await shot("06-campaign-completed");
});
