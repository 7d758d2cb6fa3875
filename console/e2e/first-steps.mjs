// The console's first journey, in Debian's Chromium (./harness.mjs),
// against a running wablast with the simulator: a stranger signs up, links
// a number by QR, uploads contacts, checks them on WhatsApp, imports a
// group and switches to English.
//
// Run by tests/e2e/console.rs. Environment: WABLAST_CONSOLE_EMAIL and
// WABLAST_CONSOLE_PASSWORD (the owner to sign up), and the harness's.

import { journey, required, step } from "./harness.mjs";
import { xlsx } from "./xlsx.mjs";

const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");

await journey("first-steps", async ({ base, page, dialog, shot, heading, expectHttpErrors, markPage, assertNotReloaded }) => {
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
  expectHttpErrors(1);
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
  await markPage();
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
  await assertNotReloaded();
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

  // Contacts: the empty state says what to do; upload an XLSX of messy numbers.
  await page.getByRole("navigation").getByRole("link", { name: "Kontak" }).click();
  await heading("Daftar kontak").waitFor();
  await page.getByText("Belum ada daftar kontak").waitFor();
  await shot("11-contacts-empty");
  await page.getByRole("link", { name: "Unggah kontak" }).first().click();
  await heading("Unggah kontak").waitFor();
  const sheet = xlsx([
    ["No HP", "Nama", "Setuju", "kota"],
    ["0812-3456-7890", "Budi", "ya", "Bandung"],
    ["+62 813 1111 2222", "Sari", "ya", "Jakarta"],
    ["6281400001111", "Andi", "ya", "Medan"],
    ["12345", "Tono", "ya", "Solo"],
    ["0812 3456 7890", "Budi lagi", "ya", "Bandung"],
    ["0815-5555-6666", "Rina", "tidak", "Bogor"],
  ]);
  await page.getByLabel("Berkas CSV atau XLSX").setInputFiles({
    name: "Pelanggan Bandung.xlsx",
    mimeType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    buffer: Buffer.from(sheet),
  });
  const preview = page.getByTestId("upload-preview");
  await preview.getByText("+62 813 1111 2222").waitFor();
  await page.getByText("5 baris pertama dari 6 baris data.").waitFor();
  // The mapping is checked next to its field before anything is sent.
  const consent = page.getByLabel("Persetujuan", { exact: true });
  await consent.selectOption({ label: "— pilih kolom —" });
  await page.getByRole("button", { name: "Impor kontak" }).click();
  await page.getByText("Pilih kolom persetujuan: hanya kontak yang setuju boleh diimpor.").waitFor();
  if ((await consent.getAttribute("aria-invalid")) !== "true") throw new Error("the consent field is not marked invalid");
  await page.getByLabel("Nomor WhatsApp", { exact: true }).selectOption({ label: "No HP" });
  await page.getByLabel("Nama (opsional)").selectOption({ label: "Nama" });
  await consent.selectOption({ label: "Setuju" });
  await page.getByRole("checkbox", { name: "kota" }).check();
  await shot("12-contacts-upload");
  await page.getByRole("button", { name: "Impor kontak" }).click();

  // The report: three imported, three rejected, each with its reason.
  const report = page.getByTestId("import-report");
  await report.getByText("3 dari 6 baris diimpor; 3 ditolak.").waitFor();
  const rejected = report.getByTestId("rejected-rows");
  await rejected.getByRole("row").filter({ hasText: "12345" }).getByText("Nomor tidak valid.").waitFor();
  await rejected.getByRole("row").filter({ hasText: "Nomor ganda." }).getByText("(sama dengan baris 1)").waitFor();
  const noConsent = rejected.getByRole("row").filter({ hasText: "Tidak ada persetujuan." });
  await noConsent.getByText("kolom Setuju").waitFor();
  if ((await noConsent.getByRole("cell").first().textContent()) !== "6") throw new Error("the row without consent is not row 6");
  await shot("13-contacts-report");

  // The list: its contacts in E.164, not checked yet.
  await report.getByRole("link", { name: "Buka daftar" }).click();
  await heading("Pelanggan Bandung").waitFor();
  const contacts = page.getByTestId("contacts-table");
  for (const phone of ["+6281234567890", "+6281311112222", "+6281400001111"]) {
    await contacts.locator(`[data-phone="${phone}"]`).getByText("Belum diperiksa").waitFor();
  }

  // Check the numbers on WhatsApp with the linked number: live to the end.
  const check = page.getByTestId("check-panel");
  await check.getByLabel("Periksa dengan nomor").selectOption({ label: "CS Jakarta 1 (+6281200000001)" });
  await check.getByRole("button", { name: "Periksa nomor" }).click();
  await check.getByRole("progressbar", { name: "Kemajuan pemeriksaan" }).waitFor();
  await page.locator('[data-testid="check-panel"][data-check-status="completed"]').waitFor({ timeout: 60_000 });
  await check.getByText("3 dari 3 diperiksa · Ada di WhatsApp: 3 · Tidak ada: 0").waitFor();
  await check.getByText("Pemeriksaan selesai.").waitFor();
  for (const phone of ["+6281234567890", "+6281311112222", "+6281400001111"]) {
    await contacts.locator(`[data-phone="${phone}"] [data-wa="on"]`).waitFor();
  }
  await assertNotReloaded();
  await shot("14-contacts-checked");

  // Remove one contact.
  await contacts.getByRole("button", { name: "Hapus +6281400001111" }).click();
  await dialog.getByRole("button", { name: "Ya, hapus" }).click();
  await contacts.locator('[data-phone="+6281400001111"]').waitFor({ state: "detached" });
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("15-contacts-list-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // Back to all lists: the new one is there.
  await page.getByRole("link", { name: "← Semua daftar" }).click();
  await heading("Daftar kontak").waitFor();
  await page.getByTestId("contact-list-row").filter({ hasText: "Pelanggan Bandung.xlsx" }).getByText("Berkas Excel").waitFor();
  await shot("16-contacts-lists");

  // A WhatsApp group's members as a list: only on the owner's word that they agreed.
  await page.getByRole("button", { name: "Impor dari grup WhatsApp" }).click();
  await dialog.getByLabel("Grup", { exact: true }).selectOption({ label: "Pelanggan Setia (5 anggota)" });
  await dialog.getByRole("button", { name: "Impor anggota" }).click();
  await dialog.getByText("Centang ini dulu: hanya kontak yang setuju boleh diimpor.").waitFor();
  await dialog.getByRole("checkbox", { name: "Anggota grup ini sudah setuju menerima pesan dari saya." }).check();
  await dialog.getByRole("button", { name: "Impor anggota" }).click();
  await dialog.getByText("Daftar “Pelanggan Setia” dibuat.").waitFor();
  await dialog.getByText("Nomornya disembunyikan WhatsApp.").waitFor();
  await shot("17-contacts-group");
  await dialog.getByRole("button", { name: "Ke semua daftar" }).click();
  await page.getByTestId("contact-list-row").getByRole("link", { name: "Pelanggan Setia" }).waitFor();
  await page.getByTestId("contact-list-row").filter({ hasText: "Grup WhatsApp" }).waitFor();
  await page.getByRole("navigation").getByRole("link", { name: "Nomor" }).click();
  await heading("Nomor WhatsApp").waitFor();

  // A second number by pairing code, its phone written as people write it:
  // the code to type, with a copy button.
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  await page.getByRole("button", { name: "Tambah nomor" }).first().click();
  await dialog.getByLabel("Nama nomor").fill("CS Bandung");
  await dialog.getByRole("radio", { name: "Kode tautan (tanpa memindai)" }).check();
  await dialog.getByLabel("Nomor WhatsApp").fill("0812-9999-0002");
  await dialog.getByRole("button", { name: "Tambah dan tautkan" }).click();
  await dialog.getByText("Masukkan kode ini di ponsel dengan nomor +6281299990002.").waitFor();
  const pairingCode = dialog.getByTestId("pairing-code");
  await pairingCode.filter({ hasText: /^[A-Z0-9]{4}-?[A-Z0-9]{4}$/ }).waitFor({ timeout: 30_000 });
  await dialog.getByRole("button", { name: "Salin kode" }).click();
  await dialog.getByText("Kode disalin.").waitFor();
  const copiedCode = await page.evaluate(() => navigator.clipboard.readText());
  if (copiedCode !== (await pairingCode.textContent())) throw new Error(`the clipboard holds ${JSON.stringify(copiedCode)}`);
  await shot("18-numbers-pairing");
  const pairingId = await dialog.getByTestId("link-panel").getAttribute("data-session-id");
  await dialog.getByRole("button", { name: "Tutup" }).first().click();
  const pairingCard = page.locator(`[data-testid="number-card"][data-session-id="${pairingId}"]`);
  await pairingCard.getByText("CS Bandung").waitFor();

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

  // Logged out after a confirmation: unlinked, live.
  await card.getByRole("button", { name: "Log out" }).click();
  await dialog.getByText("This device is unlinked from WhatsApp. To send again, the number must be linked again.").waitFor();
  await dialog.getByRole("button", { name: "Yes, log out" }).click();
  await card.locator('[data-status="logged_out"]').waitFor({ timeout: 30_000 });
  await shot("19-numbers-logged-out");
});
