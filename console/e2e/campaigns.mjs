// The console's campaigns, in Debian's Chromium (./harness.mjs), against a
// running wablast with the simulator: an owner with a plan, a ready number
// and a list of three contacts with a `kota` column builds a campaign in
// the wizard (a variable, spintax, an image, the live preview, the points
// it reserves), starts it, watches it complete live, filters its messages,
// exports the CSV and finds it on the dashboard; then pauses, resumes and
// cancels a second one, and sees a failed send among the recent failures.
//
// Run by tests/e2e/console_campaigns.rs. Environment: WABLAST_CONSOLE_EMAIL
// and WABLAST_CONSOLE_PASSWORD (the owner), and the harness's.

import { readFile } from "node:fs/promises";
import { deflateSync } from "node:zlib";
import { focusBack, journey, required, step } from "./harness.mjs";

const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");

const PHONES = ["+6281234567890", "+6281311112222", "+6281400001111"];
const TEXT = /^(Halo|Hai) Budi dari Bandung, ada promo untuk Anda!$/;

/** A PNG of `size`×`size` pixels: green, with a white band. */
function png(size) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, "ascii");
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < size; y++) {
    const band = y > size * 0.4 && y < size * 0.6;
    const row = Buffer.alloc(1 + size * 3);
    for (let x = 0; x < size; x++) row.set(band ? [255, 255, 255] : [4, 120, 87], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** RFC 4180 CSV (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length > 0) rows.push([...row, field]);
  return rows;
}

function expect(condition, what) {
  if (!condition) throw new Error(what);
}

await journey("campaigns", async ({ base, page, dialog, shot, heading, nav, signIn, expectHttpErrors, markPage, assertNotReloaded }) => {
  await signIn(email, password);
  await markPage();
  // No campaign yet: the dashboard says how to start one, nothing failed.
  const dashboardCampaigns = page.getByTestId("dashboard-campaigns");
  await dashboardCampaigns.getByText("Belum ada kampanye").waitFor();
  await page.getByTestId("recent-failures").getByText("Belum ada pesan yang gagal.").waitFor();
  await page.getByTestId("points-available").filter({ hasText: "1.000" }).waitFor();
  await shot("01-dashboard-before");

  // Campaigns: the empty state leads to the wizard.
  await nav("Kampanye").click();
  await heading("Kampanye").waitFor();
  await page.getByText("Belum ada kampanye").waitFor();
  await shot("02-campaigns-empty");
  await page.getByRole("link", { name: "Buat kampanye" }).first().click();
  await heading("Kampanye baru").waitFor();
  const atStep = (name) => page.locator(`form[data-step="${name}"]`).waitFor();
  const next = page.getByRole("button", { name: "Lanjut" });

  // Step 1, the list: nothing chosen is refused next to each field.
  await next.click();
  const name = page.getByLabel("Nama kampanye");
  await page.getByText("Beri nama kampanye ini (maksimal 120 karakter).").waitFor();
  await page.getByText("Pilih daftar kontak yang akan dikirimi.").waitFor();
  expect((await name.getAttribute("aria-invalid")) === "true", "the name is not marked invalid");
  await name.fill("Promo Bandung");
  await page.getByRole("radio", { name: /Pelanggan Bandung/ }).check();
  await page.getByText("3 kontak · variabel: kota").waitFor();
  await page.getByRole("checkbox", { name: "Lewati nomor yang tidak ada di WhatsApp" }).check();
  await shot("03-wizard-list");
  await next.click();

  // Step 2, the message: an empty one is refused next to its field.
  await atStep("message");
  await next.click();
  const message = page.getByLabel("Isi pesan");
  await page.getByText("Tulis pesannya dulu.").waitFor();
  expect((await message.getAttribute("aria-invalid")) === "true", "the message is not marked invalid");
  const describedBy = await message.getAttribute("aria-describedby");
  const said = await page.locator(`[id="${describedBy}"]`).textContent();
  expect(said === "Tulis pesannya dulu.", `the message is described by ${JSON.stringify(said)}`);
  await shot("04-wizard-message-empty");

  // A variable the list does not have: the API's refusal, next to the field.
  expectHttpErrors(1);
  await message.fill("Halo {{kotamu}}");
  const unknown = page.getByText("Variabel tidak ada di daftar ini: {{kotamu}}. Pakai tombol variabel di atas.");
  await unknown.waitFor();
  await next.click();
  await unknown.waitFor();
  await atStep("message");

  // Spintax, and the list's columns inserted at the cursor.
  await message.fill("{Halo|Hai} ");
  await page.getByRole("button", { name: "{{name}}" }).click();
  await focusBack(message);
  await page.keyboard.type(" dari ");
  await page.getByRole("button", { name: "{{kota}}" }).click();
  await focusBack(message);
  await page.keyboard.type(", ada promo untuk Anda!");
  const template = await message.inputValue();
  expect(template === "{Halo|Hai} {{name}} dari {{kota}}, ada promo untuk Anda!", `the message is ${JSON.stringify(template)}`);
  // The live preview, rendered by the API for the first contacts.
  const sample = page.locator(`[data-testid="preview-sample"][data-phone="${PHONES[0]}"]`);
  await sample.getByText(TEXT).waitFor();
  await page.locator(`[data-testid="preview-sample"][data-phone="${PHONES[1]}"]`).getByText(/Sari dari Jakarta/).waitFor();
  await shot("05-wizard-message-preview");
  await next.click();

  // Step 3, an image: uploaded at once, shown, the text becomes its caption.
  await atStep("media");
  await page.getByLabel("Gambar atau berkas (opsional)").setInputFiles({ name: "promo.png", mimeType: "image/png", buffer: png(96) });
  const chosen = page.getByTestId("media-chosen");
  await chosen.getByText("promo.png").waitFor();
  await chosen.getByText(/image\/png/).waitFor();
  await chosen.getByRole("img", { name: "promo.png" }).waitFor();
  await shot("06-wizard-media");
  await next.click();

  // Step 4, the senders: at least one ready number.
  await atStep("senders");
  await next.click();
  await page.getByText("Pilih minimal satu nomor pengirim yang siap.").waitFor();
  await page.getByRole("checkbox", { name: "CS Jakarta 1 (+6281200000001)" }).check();
  await shot("07-wizard-senders");
  await next.click();

  // Step 5, the pause between sends: checked, then short for the test.
  await atStep("throttle");
  await page.getByLabel("Jeda minimum (detik)").fill("3");
  await page.getByLabel("Jeda maksimum (detik)").fill("1");
  await next.click();
  await page.getByText("Jeda maksimum tidak boleh lebih kecil dari jeda minimum.").waitFor();
  await page.getByLabel("Jeda minimum (detik)").fill("1");
  await page.getByLabel("Jeda maksimum (detik)").fill("2");
  await shot("08-wizard-throttle");
  await next.click();

  // Step 6, when: a time in the past is refused; now it is.
  await atStep("schedule");
  await page.getByRole("radio", { name: "Jadwalkan" }).check();
  await page.getByLabel("Tanggal dan jam mulai").fill("2020-01-01T09:00");
  await next.click();
  await page.getByText("Pilih waktu yang akan datang.").waitFor();
  await page.getByRole("radio", { name: "Mulai sekarang" }).check();
  await shot("09-wizard-schedule");
  await next.click();

  // Step 7, the review: 3 recipients × 2 points against 1,000 available.
  await atStep("review");
  const points = page.getByTestId("review-points");
  await points.getByText("6 poin akan dicadangkan (3 penerima × 2 poin).").waitFor();
  await points.getByText("Poin tersedia: 1.000 · sisa 994 setelah dicadangkan").waitFor();
  expect((await points.getAttribute("data-enough")) === "true", "the review says the points are not enough");
  await page.getByText("promo.png").waitFor();
  await page.getByText("Dilewati, tanpa poin").waitFor();
  await shot("10-wizard-review");
  await page.getByRole("button", { name: "Mulai kampanye" }).click();

  // The campaign's page: it runs and completes live.
  await page.waitForURL(/\/campaigns\/[0-9a-f-]{36}$/);
  await heading("Promo Bandung").waitFor();
  const campaignId = page.url().split("/").pop();
  await shot("11-campaign-started");
  await step("started", { campaign_id: campaignId });
  const count = (name) => page.getByTestId(`count-${name}`);
  await count("total").and(page.locator('[data-value="3"]')).waitFor();
  await count("sent").and(page.locator('[data-value="3"]')).waitFor({ timeout: 60_000 });
  await page.locator('[data-campaign-status="completed"]').waitFor({ timeout: 60_000 });
  // Receipts follow: delivered, then read (the simulator's delays).
  await count("read").and(page.locator('[data-value="3"]')).waitFor({ timeout: 60_000 });
  const chart = page.getByTestId("progress-chart");
  const drawn = Number(await chart.getAttribute("data-points"));
  expect(drawn >= 3, `the chart has ${drawn} points`);
  await page.getByRole("img", { name: "Grafik: 3 terkirim, 3 diterima, 3 dibaca dari 3 penerima." }).waitFor();
  await page.getByTestId("campaign-points").getByText("Poin dicadangkan: 6 · terpakai: 6").waitFor();
  await page.getByTestId("campaign-media").getByRole("img", { name: "promo.png" }).waitFor();
  await assertNotReloaded();
  await shot("12-campaign-completed");

  // The messages: filtered by status, each with the text it was sent with.
  const table = page.getByTestId("messages-table");
  const filter = page.getByLabel("Tampilkan status");
  await filter.selectOption({ label: "Gagal" });
  await page.getByText("Tidak ada pesan berstatus “Gagal”.").waitFor();
  await filter.selectOption({ label: "Dibaca" });
  for (const phone of PHONES) await table.locator(`[data-testid="message-row"][data-phone="${phone}"][data-status="read"]`).waitFor();
  await table.locator(`[data-phone="${PHONES[0]}"]`).getByTestId("message-text").getByText(TEXT).waitFor();
  await table.locator(`[data-phone="${PHONES[2]}"]`).getByText(/^(Halo|Hai) Andi dari Medan, ada promo untuk Anda!$/).waitFor();
  await shot("13-campaign-messages");

  // The CSV: downloaded with the token, one row per message.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Ekspor CSV" }).click()]);
  expect(download.suggestedFilename() === `campaign-${campaignId}.csv`, `the file is ${download.suggestedFilename()}`);
  const rows = parseCsv(await readFile(await download.path(), "utf8"));
  const [header, ...lines] = rows.filter((r) => r.some((cell) => cell !== ""));
  expect(header.slice(0, 7).join(",") === "phone,name,status,error,sent_at,delivered_at,read_at", `the header is ${header}`);
  expect(lines.length === 3, `the CSV has ${lines.length} rows`);
  const textColumn = header.indexOf("text");
  for (const phone of PHONES) {
    const line = lines.find((l) => l[0] === phone);
    expect(line, `the CSV has no row for ${phone}`);
    expect(line[2] === "read" && line[4] !== "", `the CSV row of ${phone} is ${line}`);
  }
  expect(TEXT.test(lines.find((l) => l[0] === PHONES[0])[textColumn]), "the CSV does not hold the text sent");
  await page.getByText(`Berkas campaign-${campaignId}.csv diunduh.`).waitFor();

  // On a phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("14-campaign-phone");
  await page.setViewportSize({ width: 1280, height: 860 });

  // The dashboard shows it, done.
  await nav("Dasbor").click();
  await heading("Dasbor").waitFor();
  const onDashboard = dashboardCampaigns.locator(`li[data-campaign-id="${campaignId}"]`);
  await onDashboard.getByRole("link", { name: "Promo Bandung" }).waitFor();
  await onDashboard.locator('[data-campaign-status="completed"]').waitFor();
  await onDashboard.getByText("3 dari 3 terkirim").waitFor();
  await shot("15-dashboard-after");

  // A second campaign, started through the API with a long pause: pause,
  // resume and cancel it here. One of its sends fails.
  await step("second-campaign");
  await nav("Kampanye").click();
  await heading("Kampanye").waitFor();
  const second = page.getByTestId("campaign-row").filter({ hasText: "Promo Jakarta" });
  await second.locator('[data-campaign-status="running"]').waitFor();
  await page.getByTestId("campaign-row").filter({ hasText: "Promo Bandung" }).getByText("3 dari 3 terkirim").waitFor();
  await shot("16-campaigns-list");
  await second.getByRole("link", { name: "Promo Jakarta" }).click();
  await heading("Promo Jakarta").waitFor();
  const actions = page.getByRole("group", { name: "Tindakan kampanye" });
  await actions.getByRole("button", { name: "Jeda" }).click();
  await actions.locator('[data-campaign-status="paused"]').waitFor();
  await page.getByTestId("campaign-waiting").getByText("Dijeda oleh Anda. Lanjutkan kapan saja.").waitFor();
  await shot("17-campaign-paused");
  await actions.getByRole("button", { name: "Lanjutkan" }).click();
  await actions.locator('[data-campaign-status="running"]').waitFor();
  await actions.getByRole("button", { name: "Batalkan kampanye" }).click();
  await dialog.getByText("Pesan yang belum terkirim tidak akan dikirim").waitFor();
  await shot("18-campaign-cancel-confirm");
  await dialog.getByRole("button", { name: "Ya, batalkan" }).click();
  await actions.locator('[data-campaign-status="cancelled"]').waitFor();
  // Its waiting messages are cancelled by the process that follows it: live.
  await page.getByTestId("count-waiting").and(page.locator('[data-value="0"]')).waitFor({ timeout: 30_000 });
  await page.getByTestId("count-failed").and(page.locator('[data-value="1"]')).waitFor();
  await page.getByTestId("message-row").filter({ hasText: "Dibatalkan" }).first().waitFor();
  await shot("19-campaign-cancelled");

  // The dashboard: the failure, with its reason and its campaign.
  await nav("Dasbor").click();
  await heading("Dasbor").waitFor();
  const failures = page.getByTestId("recent-failures");
  await failures.getByText("+6281399990000", { exact: true }).waitFor();
  await failures.getByText("+6281399990000 is not on WhatsApp").waitFor();
  await failures.getByRole("link", { name: "Lihat kampanye" }).waitFor();
  await assertNotReloaded();
  await shot("20-dashboard-failures");

  // On a phone-sized screen: a campaign scheduled for tomorrow, then moved.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/campaigns/new`);
  await heading("Kampanye baru").waitFor();
  await page.getByLabel("Nama kampanye").fill("Promo Besok");
  await page.getByRole("radio", { name: /Pelanggan Bandung/ }).check();
  await next.click();
  await atStep("message");
  await message.fill("Hai {{name|Kak}}, besok ada promo!");
  await sample.getByText("Hai Budi, besok ada promo!").waitFor();
  await shot("21-wizard-phone");
  await next.click();
  await atStep("media");
  await next.click();
  await page.getByRole("checkbox", { name: "CS Jakarta 1 (+6281200000001)" }).check();
  await next.click();
  await atStep("throttle");
  await next.click();
  await page.getByRole("radio", { name: "Jadwalkan" }).check();
  const tomorrow = new Date(Date.now() + 86_400_000);
  const local = (d, hh) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}T${hh}:00`;
  await page.getByLabel("Tanggal dan jam mulai").fill(local(tomorrow, "09"));
  await next.click();
  await atStep("review");
  await page.getByText("Poin dicadangkan saat kampanye mulai.").waitFor();
  await page.getByRole("button", { name: "Jadwalkan kampanye" }).click();
  await heading("Promo Besok").waitFor();
  await actions.locator('[data-campaign-status="scheduled"]').waitFor();
  const notice = page.getByTestId("campaign-waiting");
  await notice.getByText(/^Dijadwalkan mulai .*09\.00\.$/).waitFor();
  await page.getByTestId("campaign-not-started").getByText("Belum dimulai. Daftarnya berisi 3 kontak: 6 poin dicadangkan saat mulai.").waitFor();
  await actions.getByRole("button", { name: "Ubah jadwal" }).click();
  await dialog.getByLabel("Tanggal dan jam mulai").fill(local(tomorrow, "10"));
  await shot("22-campaign-reschedule-phone");
  await dialog.getByRole("button", { name: "Simpan jadwal" }).click();
  await notice.getByText(/^Dijadwalkan mulai .*10\.00\.$/).waitFor();
  await shot("23-campaign-scheduled-phone");
});
