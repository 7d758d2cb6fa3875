// The inbox, auto-replies and active hours, in Debian's Chromium
// (./harness.mjs), against a running wablast with the simulator: a customer
// writes to the owner's number, the owner sees it arrive live, reads and
// answers it, automates the answer to a question, and sets the active hours.
//
// Run by tests/e2e/console_inbox.rs, which made the owner (a plan, two
// ready numbers). Environment: WABLAST_CONSOLE_EMAIL and
// WABLAST_CONSOLE_PASSWORD (the owner), WABLAST_CONSOLE_CUSTOMER (who
// writes), and the harness's.

import { journey, required, step } from "./harness.mjs";

const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");
const customer = required("WABLAST_CONSOLE_CUSTOMER");

const question = "Halo kak, kaos hitam masih ada?";
const answer = "Masih ada, Kak. Mau ukuran apa?";
const automatic = "Harga kaos polos Rp75.000, sablon mulai Rp95.000.";

await journey("inbox", async ({ page, dialog, shot, heading, nav, signIn, markPage, assertNotReloaded, expectHttpErrors }) => {
  await signIn(email, password);

  // The inbox: nothing yet, and it says what will come.
  await nav("Kotak masuk").click();
  await heading("Kotak masuk").waitFor();
  await page.getByText("Belum ada percakapan").waitFor();
  await page.locator('[data-stream="open"]').waitFor();
  await markPage();
  await shot("01-inbox-empty");

  // A customer writes: the chat appears live, one unread.
  await step("inbox-open");
  const row = page.locator(`[data-testid="chat-row"][data-peer="${customer}"]`);
  await row.getByTestId("unread").filter({ hasText: "1" }).waitFor({ timeout: 20_000 });
  await row.getByText(question).waitFor();
  await row.getByText("CS Jakarta 1").waitFor();
  await assertNotReloaded();
  await shot("02-inbox-unread");

  // Filtered by the other number: not there.
  const filter = page.getByLabel("Nomor", { exact: true });
  await filter.selectOption({ label: "CS Bandung (+6281200000002)" });
  await page.getByText("Belum ada percakapan").waitFor();
  await filter.selectOption({ label: "CS Jakarta 1 (+6281200000001)" });
  await row.waitFor();

  // Open it: the message is there, and it is read.
  await row.getByRole("link").click();
  const thread = page.getByTestId("thread");
  await thread.locator('[data-testid="bubble"][data-direction="in"]').getByText(question).waitFor();
  await row.getByTestId("unread").waitFor({ state: "detached" });
  if ((await row.getAttribute("data-unread")) !== "0") throw new Error("the chat is still unread");

  // Answer: queued, sent, then delivered, live.
  await thread.getByLabel("Balasan").fill(answer);
  await thread.getByRole("button", { name: "Kirim" }).click();
  const reply = (...statuses) =>
    thread
      .locator(statuses.map((s) => `[data-testid="bubble"][data-direction="out"][data-status="${s}"]`).join(", "))
      .filter({ hasText: answer });
  await reply("queued", "sending", "sent", "delivered", "read").waitFor();
  if ((await thread.getByLabel("Balasan").inputValue()) !== "") throw new Error("the reply box was not emptied");
  await reply("sent", "delivered", "read").waitFor({ timeout: 20_000 });
  await reply("delivered", "read").waitFor({ timeout: 20_000 });
  await reply("delivered", "read").getByTestId("message-status").filter({ hasText: /Diterima|Dibaca/ }).waitFor();
  await assertNotReloaded();
  await shot("03-inbox-thread");

  // On a phone: the conversation alone, and back to the list.
  await page.setViewportSize({ width: 390, height: 844 });
  await thread.getByText(answer).waitFor();
  await shot("04-inbox-phone-thread");
  await page.getByRole("link", { name: "← Semua percakapan" }).click();
  await row.waitFor();
  await shot("05-inbox-phone-list");
  await page.setViewportSize({ width: 1280, height: 860 });

  // Auto-replies: none yet; make one, trying it first.
  await nav("Balas otomatis").click();
  await heading("Balas otomatis").waitFor();
  await page.getByText("Belum ada aturan balas otomatis").waitFor();
  await shot("06-automation-empty");
  await page.getByRole("link", { name: "Tambah aturan" }).first().click();
  await heading("Aturan balas otomatis baru").waitFor();
  await page.getByLabel("Nama aturan").fill("Tanya harga");
  await page.getByRole("radio", { name: /^Mengandung/ }).check();
  await page.getByLabel("Pola", { exact: true }).fill("harga");
  const sample = page.getByLabel("Coba dengan pesan contoh");
  const result = page.getByTestId("test-result");
  await sample.fill("Kaos hitam masih ada?");
  await result.and(page.locator('[data-result="no_match"]')).waitFor();
  await result.getByText("Tidak cocok").waitFor();
  await sample.fill("Berapa HÁRGA kaosnya?");
  await result.and(page.locator('[data-result="match"]')).waitFor();
  await result.getByText("Cocok: aturan ini akan membalas pesan ini.").waitFor();
  await page.getByLabel("Balasan", { exact: true }).fill(automatic);
  await shot("07-automation-rule");
  await page.getByRole("button", { name: "Simpan aturan" }).click();

  // The rule, on; the customer asks; the rule answers and counts it.
  await heading("Balas otomatis").waitFor();
  const card = page.getByTestId("rule-card").filter({ hasText: "Tanya harga" });
  await card.getByRole("switch", { name: "Aturan Tanya harga aktif" }).waitFor();
  await card.locator('[data-testid="answered"][data-count="0"]').waitFor();
  await markPage();
  await step("rule-saved");
  await card.locator('[data-testid="answered"][data-count="1"]').waitFor({ timeout: 30_000 });
  await card.getByText("Dibalas: 1").waitFor();
  await assertNotReloaded();
  await shot("08-automation-answered");

  // The answer is in the conversation.
  await nav("Kotak masuk").click();
  await heading("Kotak masuk").waitFor();
  await row.getByRole("link").click();
  await thread.locator('[data-testid="bubble"][data-direction="in"]').getByText("Berapa harga kaos yang XL?").waitFor();
  await thread.locator('[data-testid="bubble"][data-direction="out"]').getByText(automatic).waitFor();
  await shot("09-inbox-auto-reply");

  // Active hours: always on, until the weekdays preset is saved.
  await nav("Jam aktif").click();
  await heading("Jam aktif").waitFor();
  const state = page.getByTestId("schedule-state");
  await state.and(page.locator('[data-state="always"]')).waitFor();
  if ((await page.getByLabel("Zona waktu").inputValue()) !== "Asia/Jakarta") throw new Error("not Asia/Jakarta");
  await shot("10-schedule-always");
  await page.getByRole("button", { name: "Hari kerja 09.00–18.00" }).click();
  await page.getByRole("button", { name: "Hari kerja 09.00–18.00", pressed: true }).waitFor();
  if ((await page.getByLabel("Mulai Senin").inputValue()) !== "09:00") throw new Error("Monday does not start at 09:00");
  if ((await page.getByLabel("Selesai Jumat").inputValue()) !== "18:00") throw new Error("Friday does not end at 18:00");
  await page.locator('[data-day="sat"]').getByText("Tutup").waitFor();
  await page.getByRole("button", { name: "Simpan jam aktif" }).click();
  await page.getByText("Jam aktif disimpan.").waitFor();
  await state.and(page.locator('[data-state="open"], [data-state="closed"]')).waitFor();
  await shot("11-schedule-weekdays");

  // Pause all, then back to the schedule.
  await page.getByRole("button", { name: "Jeda semua" }).click();
  await state.and(page.locator('[data-state="paused"]')).waitFor();
  await state.getByText("Dijeda: semua pengiriman berhenti").waitFor();
  await page.getByRole("button", { name: "Jeda semua", pressed: true }).waitFor();
  await shot("12-schedule-paused");

  // Paused, a reply is refused, and the inbox says why.
  await nav("Kotak masuk").click();
  await row.getByRole("link").click();
  await thread.getByLabel("Balasan").fill("Sebentar ya, Kak.");
  expectHttpErrors(1);
  await thread.getByRole("button", { name: "Kirim" }).click();
  await thread.getByRole("alert").getByText("Semua pengiriman sedang dijeda: balasan tidak dikirim.", { exact: false }).waitFor();
  await shot("13-inbox-refused");
  await nav("Jam aktif").click();
  await heading("Jam aktif").waitFor();
  await page.getByRole("button", { name: "Aktifkan sekarang" }).click();
  await state.and(page.locator('[data-state="activated"]')).waitFor();
  await page.getByRole("button", { name: "Kembali ke jadwal" }).click();
  await state.and(page.locator('[data-override="none"]')).waitFor();
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("14-schedule-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // The rule is deleted, after a confirmation.
  await nav("Balas otomatis").click();
  await card.getByRole("button", { name: "Hapus aturan Tanya harga" }).click();
  await dialog.getByText("Aturan “Tanya harga” dihapus dan tidak membalas lagi.", { exact: false }).waitFor();
  await dialog.getByRole("button", { name: "Ya, hapus" }).click();
  await page.getByText("Belum ada aturan balas otomatis").waitFor();
});
