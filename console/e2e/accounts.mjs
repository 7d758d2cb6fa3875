// The console's accounts journey, in Debian's Chromium (./harness.mjs): the
// platform admin puts a plan on offer and grants it to a shop by its
// account ID, finds the shop by its owner's email, suspends and
// reactivates it, and makes a new version of the plan; the shop's owner reads the wallet (live), makes an API key
// and uses it from Node, revokes it, subscribes a local receiver to
// webhooks, pings it, watches deliveries arrive, fail, get the
// subscription disabled, and enables and replays it; and cannot reach the
// admin page.
//
// Run by tests/e2e/console_accounts.rs. Environment: WABLAST_CONSOLE_ADMIN_EMAIL
// and WABLAST_CONSOLE_ADMIN_PASSWORD (the platform admin),
// WABLAST_CONSOLE_EMAIL and WABLAST_CONSOLE_PASSWORD (the owner),
// WABLAST_CONSOLE_TENANT_ID (the owner's account), WABLAST_CONSOLE_RECEIVER
// (the local webhook receiver: `/hook` takes, `/down` answers 503), and the
// harness's.

import { journey, required, step } from "./harness.mjs";

const adminEmail = required("WABLAST_CONSOLE_ADMIN_EMAIL");
const adminPassword = required("WABLAST_CONSOLE_ADMIN_PASSWORD");
const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");
const tenantId = required("WABLAST_CONSOLE_TENANT_ID");
const receiver = required("WABLAST_CONSOLE_RECEIVER");

function check(condition, what) {
  if (!condition) throw new Error(what);
}

await journey("accounts", async ({ base, page, dialog, shot, heading, nav, expectHttpErrors, signIn, markPage, assertNotReloaded }) => {
  // — The platform admin: a plan on offer, granted to the shop. —
  await signIn(adminEmail, adminPassword);
  await nav("Admin").click();
  await heading("Admin platform").waitFor();
  await page.getByTestId("fleet").getByRole("heading", { name: "Mesin sesi" }).waitFor();

  const planForm = page.getByRole("form", { name: "Paket baru" });
  await planForm.getByLabel("Nama paket").fill("Paket Usaha 30");
  await planForm.getByLabel("Masa berlaku").selectOption("30");
  await planForm.getByLabel("Poin", { exact: true }).fill("0");
  await planForm.getByLabel("Nomor WhatsApp maksimal").fill("5");
  await planForm.getByLabel("Penerima per kampanye").fill("300");
  await planForm.getByLabel("Batas harian per nomor").fill("400");
  await planForm.getByLabel("Harga (rupiah)").fill("250000");
  // The API's refusal shows next to the field it concerns.
  expectHttpErrors(1);
  await planForm.getByRole("button", { name: "Tawarkan paket" }).click();
  await planForm.getByText("Poin minimal 1.").waitFor();
  check((await planForm.getByLabel("Poin", { exact: true }).getAttribute("aria-invalid")) === "true", "the points field is not marked invalid");
  await shot("01-admin-plan-error");
  await planForm.getByLabel("Poin", { exact: true }).fill("5000");
  await planForm.getByRole("button", { name: "Tawarkan paket" }).click();
  await planForm.getByText("Paket “Paket Usaha 30” sekarang ditawarkan.").waitFor();
  const newPlan = page.getByTestId("plan-row").filter({ hasText: "Paket Usaha 30" });
  await newPlan.getByText(/Rp\s?250\.000/).waitFor();
  await newPlan.getByRole("cell", { name: "5.000" }).waitFor();

  const grantForm = page.getByRole("form", { name: "Beri paket atau poin" });
  const tenantField = grantForm.getByLabel("ID akun (tenant)");
  // Not an ID: said before anything is sent.
  await tenantField.fill("toko-budi");
  await grantForm.getByRole("button", { name: "Berikan" }).click();
  await grantForm.getByText("Ini bukan ID akun").waitFor();
  // An ID no account has: the API's 404 in the form's words.
  await tenantField.fill("0190f0a2-7c1e-7b3a-9d2e-1a2b3c4d5e6f");
  expectHttpErrors(1);
  await grantForm.getByRole("button", { name: "Berikan" }).click();
  await grantForm.getByText("Tidak ada akun dengan ID ini.").waitFor();
  await tenantField.fill(tenantId);
  await grantForm.getByLabel("Paket yang diberikan").selectOption({ label: "Paket Usaha 30 — 5.000 poin, 30 hari" });
  await grantForm.getByRole("button", { name: "Berikan" }).click();
  const granted = page.getByTestId("grant-result");
  await granted.getByText("Paket “Paket Usaha 30” diberikan: 5.000 poin dialokasikan.").waitFor();
  await granted.getByText(`Akun ${tenantId}: saldo 6.000, tersedia 6.000 poin.`).waitFor();
  await shot("02-admin");

  // The shop, found by its owner's email: suspended with a reason, then
  // reactivated.
  const search = page.getByRole("search", { name: "Cari nama atau email" });
  await search.getByLabel("Cari nama atau email").fill(email);
  await search.getByRole("button", { name: "Cari", exact: true }).click();
  const shop = page.getByTestId("tenant-row").filter({ hasText: tenantId });
  await shop.getByText("Aktif", { exact: true }).waitFor();
  await shop.getByText(/Paket: Paket Usaha 30/).waitFor();
  await shop.getByRole("button", { name: "Tangguhkan", exact: true }).click();
  await shop.getByLabel("Alasan").fill("Keluhan spam");
  await shop.getByRole("button", { name: "Tangguhkan akun", exact: true }).click();
  await shop.getByText("Ditangguhkan: Keluhan spam").waitFor();
  await shot("02b-admin-suspended");
  await shop.getByRole("button", { name: "Aktifkan lagi" }).click();
  await shop.getByText("Aktif", { exact: true }).waitFor();

  // A new version of the plan: two days of grace.
  const managed = page.getByTestId("plan-admin").filter({ hasText: "Paket Usaha 30" });
  await managed.getByText("versi 1").waitFor();
  await managed.getByRole("button", { name: "Ubah", exact: true }).click();
  await managed.getByLabel("Masa tenggang (hari, 0–14)").fill("2");
  await managed.getByRole("button", { name: "Simpan versi baru" }).click();
  await managed.getByText("versi 2").waitFor();
  await managed.getByText(/masa tenggang 2 hari/).waitFor();
  await page.getByTestId("platform-stats").getByText(/akun, \d+ mengirim pesan/).waitFor();
  await page.getByRole("button", { name: "Keluar" }).click();
  await heading("Masuk").waitFor();

  // — The owner: no admin page. —
  await signIn(email, password);
  check((await nav("Admin").count()) === 0, "the owner's navigation links the admin page");
  await page.goto(`${base}/admin`);
  await page.getByTestId("admin-refused").getByText("Halaman ini hanya untuk admin platform.").waitFor();
  check((await page.getByRole("form").count()) === 0, "the admin's forms show to the owner");
  await shot("03-admin-refused");

  // — The wallet: points, plan, expiry, history, the plans on sale. —
  await nav("Dompet").click();
  await heading("Dompet").waitFor();
  await markPage();
  await page.getByTestId("points-available").filter({ hasText: "6.000" }).waitFor();
  await page.getByTestId("points-balance").filter({ hasText: "6.000" }).waitFor();
  await page.getByTestId("points-reserved").filter({ hasText: "0" }).waitFor();
  const plan = page.getByTestId("plan");
  await plan.getByText("Paket Usaha 30").waitFor();
  await plan.getByText("Berlaku 30 hari").waitFor();
  await plan.getByTestId("plan-expiry").filter({ hasText: /hari lagi/ }).waitFor();
  const history = page.getByTestId("transactions");
  const allocations = history.locator('[data-testid="transaction"][data-kind="allocation"]');
  await allocations.nth(1).waitFor();
  // Newest first, signed, with the balance after.
  await allocations.nth(0).getByTestId("transaction-points").filter({ hasText: "+5.000" }).waitFor();
  await allocations.nth(0).getByTestId("transaction-balance").filter({ hasText: "6.000" }).waitFor();
  await allocations.nth(1).getByTestId("transaction-points").filter({ hasText: "+1.000" }).waitFor();
  await allocations.nth(1).getByTestId("transaction-balance").filter({ hasText: "1.000" }).waitFor();
  // No payments yet: the plans on sale, no way to buy, the account ID to give.
  const noPayments = page.getByTestId("no-payments");
  await noPayments.getByText("Pembelian online belum tersedia.").waitFor();
  await noPayments.getByTestId("account-id").filter({ hasText: tenantId }).waitFor();
  await page.getByTestId("plan-row").filter({ hasText: "Paket Usaha 30" }).waitFor();
  check((await page.getByRole("button", { name: /beli|bayar/i }).count()) === 0, "the wallet offers a purchase");
  await shot("04-wallet");

  // Points granted meanwhile show without a reload.
  await step("grant-points");
  await page.getByTestId("points-available").filter({ hasText: "6.250" }).waitFor();
  await history.locator('[data-testid="transaction"][data-kind="topup"]').getByTestId("transaction-points").filter({ hasText: "+250" }).waitFor();
  await assertNotReloaded();
  await shot("05-wallet-live");
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("06-wallet-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // — API keys: shown once, copied, used, revoked. —
  await nav("Developer").click();
  await heading("Developer").waitFor();
  await page.getByText("Belum ada kunci API").waitFor();
  await page.getByText("Belum ada webhook").waitFor();
  const docs = page.getByRole("link", { name: "Dokumentasi API ↗" });
  check((await docs.getAttribute("href")) === "/docs/", "the docs link does not lead to /docs/");
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  await page.getByLabel("Nama kunci").fill("Integrasi toko");
  await page.getByRole("button", { name: "Buat kunci" }).click();
  const shown = dialog.getByTestId("new-api-key");
  await shown.getByText("Kunci hanya ditampilkan sekali ini").waitFor();
  const key = await shown.getByRole("textbox").inputValue();
  check(key.length >= 20, `the key shown is ${JSON.stringify(key)}`);
  await shown.getByRole("button", { name: "Salin kunci API" }).click();
  await shown.getByRole("button", { name: "Salin kunci API" }).filter({ hasText: "Tersalin" }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === key, "the copy button did not copy the key");
  await shot("07-api-key-shown");

  // The key works from another program...
  const me = await fetch(`${base}/api/v1/me`, { headers: { "x-api-key": key } });
  check(me.status === 200, `GET /api/v1/me with the key answered ${me.status}`);
  const caller = await me.json();
  check(caller.tenant.id === tenantId, `the key acts for ${caller.tenant.id}`);
  check(caller.api_key?.name === "Integrasi toko", `the key is ${JSON.stringify(caller.api_key)}`);

  // ...is never shown again...
  await dialog.getByRole("button", { name: "Sudah saya simpan" }).click();
  const listed = page.getByTestId("api-key").filter({ hasText: "Integrasi toko" });
  await listed.waitFor();
  check(!(await page.content()).includes(key), "the key is still on the page");
  await shot("08-developers-key");

  // ...and is refused once revoked, after a confirmation.
  await listed.getByRole("button", { name: "Cabut kunci Integrasi toko" }).click();
  await dialog.getByText("sistem yang memakainya mendapat 401").waitFor();
  await dialog.getByRole("button", { name: "Ya, cabut" }).click();
  await page.getByText("Belum ada kunci API").waitFor();
  const revoked = await fetch(`${base}/api/v1/me`, { headers: { "x-api-key": key } });
  check(revoked.status === 401, `GET /api/v1/me with the revoked key answered ${revoked.status}`);

  // — A webhook to the local receiver. —
  await page.getByRole("button", { name: "Tambah webhook" }).first().click();
  await dialog.getByLabel("URL penerima").fill(`${receiver}/hook`);
  // No event type chosen: said before anything is sent.
  await dialog.getByRole("button", { name: "Buat webhook" }).click();
  await dialog.getByText("Pilih minimal satu jenis peristiwa").waitFor();
  await dialog.getByRole("checkbox", { name: "SessionCreated" }).check();
  await dialog.getByRole("checkbox", { name: "PointsGranted" }).check();
  await dialog.getByText("2 jenis peristiwa dipilih.").waitFor();
  await shot("09-webhook-new");
  await dialog.getByRole("button", { name: "Buat webhook" }).click();
  const secretShown = dialog.getByTestId("new-webhook-secret");
  await secretShown.getByText("Rahasia hanya ditampilkan sekali ini").waitFor();
  const secret = await secretShown.getByRole("textbox").inputValue();
  await dialog.getByRole("link", { name: "Buka webhook" }).click();
  await heading("Webhook").waitFor();
  const summary = page.getByTestId("webhook-summary");
  await summary.getByText(`${receiver}/hook`).waitFor();
  await summary.locator('[data-webhook-status="active"]').waitFor();
  const webhookId = page.url().split("/").pop();

  // A test ping: the receiver's answer.
  await page.getByRole("button", { name: "Kirim ping uji" }).click();
  await page.locator('[data-testid="ping-result"][data-delivered="true"]').getByText(/Diterima: penerima menjawab HTTP 200/).waitFor();
  await page.getByText("Belum ada pengiriman").waitFor();

  // Real events arrive as deliveries.
  await step("webhook-created", { webhook_id: webhookId, secret });
  const deliveries = page.getByTestId("deliveries");
  for (const type of ["SessionCreated", "PointsGranted"]) {
    await deliveries.locator(`[data-testid="delivery"][data-event-type="${type}"][data-status="delivered"]`).waitFor();
  }
  await deliveries.getByRole("button", { name: "Gagal", exact: true }).click();
  await deliveries.getByText("Tidak ada pengiriman yang gagal").waitFor();
  await deliveries.getByRole("button", { name: "Semua", exact: true }).click();
  await deliveries.locator('[data-testid="delivery"]').nth(1).waitFor();
  await shot("10-webhook-delivered");

  // The receiver goes down: the ping says what it answered.
  await page.getByRole("button", { name: "Ubah webhook" }).click();
  await dialog.getByLabel("URL penerima").fill(`${receiver}/down`);
  await dialog.getByRole("button", { name: "Simpan" }).click();
  await summary.getByText(`${receiver}/down`).waitFor();
  await page.getByRole("button", { name: "Kirim ping uji" }).click();
  const refused = page.locator('[data-testid="ping-result"][data-delivered="false"]');
  await refused.getByText(/Ditolak: penerima menjawab HTTP 503/).waitFor();
  await refused.getByText("sedang perbaikan").waitFor();

  // Deliveries fail until they are given up, and the subscription is disabled.
  await step("receiver-down", { webhook_id: webhookId });
  const disabled = page.getByTestId("webhook-disabled");
  await disabled.getByText("penerimanya gagal menerima setiap pengiriman").waitFor();
  await disabled.getByText(/Penerima gagal sejak/).waitFor();
  await deliveries.getByRole("button", { name: "Gagal", exact: true }).click();
  const dead = deliveries.locator('[data-testid="delivery"][data-status="failed"]').first();
  await dead.getByText("HTTP 503").waitFor();
  await dead.getByText("sedang perbaikan").waitFor();
  await assertNotReloaded();
  await shot("11-webhook-disabled");

  // A replay is refused while it is off.
  expectHttpErrors(1);
  await page.getByRole("button", { name: "Kirim ulang", exact: true }).click();
  await page.getByText("Webhook ini nonaktif: aktifkan dulu, lalu kirim ulang.").waitFor();

  // Mended: back to the receiver with a new secret, enabled, the dead letter replayed.
  await page.getByRole("button", { name: "Ubah webhook" }).click();
  await dialog.getByLabel("URL penerima").fill(`${receiver}/hook`);
  await dialog.getByRole("button", { name: "Buat rahasia acak" }).click();
  const rotated = await dialog.getByLabel("Rahasia baru (opsional)").inputValue();
  check(rotated.length === 64 && rotated !== secret, "no new secret was made");
  await dialog.getByRole("button", { name: "Simpan" }).click();
  await summary.getByText(`${receiver}/hook`).waitFor();
  await disabled.getByRole("button", { name: "Aktifkan lagi" }).click();
  await summary.locator('[data-webhook-status="active"]').waitFor();
  await dead.getByRole("button", { name: "Kirim ulang dari sini" }).click();
  const from = await page.getByLabel("Mulai setelah posisi").inputValue();
  check(/^events:\d+$/.test(from), `the replay starts from ${from}`);
  await page.getByRole("button", { name: "Kirim ulang", exact: true }).click();
  await page.getByTestId("replay-result").getByText(/peristiwa diantrekan untuk dikirim ulang/).waitFor();
  await deliveries.getByRole("button", { name: "Terkirim", exact: true }).click();
  await deliveries
    .locator('[data-testid="delivery"][data-status="delivered"][data-replayed="true"][data-event-type="PointsGranted"]')
    .first()
    .waitFor({ timeout: 20_000 });
  await step("replayed", { webhook_id: webhookId, secret: rotated });
  await assertNotReloaded();
  await shot("12-webhook-replayed");

  await nav("Developer").click();
  await page.getByTestId("webhook").filter({ hasText: `${receiver}/hook` }).locator('[data-webhook-status="active"]').waitFor();
  await shot("13-developers");
});
