// The fleet on the admin page, in Debian's Chromium (./harness.mjs): the
// platform admin sees both engines and the number one of them runs,
// moves it to the other pinned there, unpins it, drains that engine (the
// number comes back to the first) and undrains it; then finds the number
// among every tenant's numbers and raises its trust level.
//
// Run by tests/e2e/console_fleet.rs. Environment:
// WABLAST_CONSOLE_ADMIN_EMAIL and WABLAST_CONSOLE_ADMIN_PASSWORD (the
// platform admin), WABLAST_FLEET_SESSION and WABLAST_FLEET_NAME (the
// number), WABLAST_FLEET_FROM (the engine running it) and
// WABLAST_FLEET_TO (the other), and the harness's.

import { journey, required } from "./harness.mjs";

const adminEmail = required("WABLAST_CONSOLE_ADMIN_EMAIL");
const adminPassword = required("WABLAST_CONSOLE_ADMIN_PASSWORD");
const session = required("WABLAST_FLEET_SESSION");
const name = required("WABLAST_FLEET_NAME");
const from = required("WABLAST_FLEET_FROM");
const to = required("WABLAST_FLEET_TO");

await journey("fleet", async ({ page, shot, heading, nav, signIn }) => {
  await signIn(adminEmail, adminPassword);
  await nav("Admin").click();
  await heading("Admin platform").waitFor();

  // Both engines, and the number on the one running it.
  const fleet = page.getByTestId("fleet");
  const engine = (id) => fleet.locator(`[data-testid="engine-row"][data-engine-id="${id}"]`);
  const numberOn = (id) => engine(id).locator(`[data-testid="engine-session"][data-session-id="${session}"]`);
  await engine(from).waitFor();
  await engine(to).waitFor();
  await engine(from).getByTestId("engine-load").filter({ hasText: /1 nomor/ }).waitFor();
  await engine(from).getByRole("button", { name: "Lihat nomornya" }).click();
  await numberOn(from).getByText(name).waitFor();
  await shot("01-fleet");

  // Moved to the other engine, pinned there.
  const move = numberOn(from).getByRole("form", { name: `Pindahkan ${name}` });
  await move.getByLabel("Pindah ke").selectOption(to);
  await move.getByLabel("Sematkan di sana (nomor khusus)").check();
  await move.getByRole("button", { name: "Pindahkan" }).click();
  await engine(to).getByRole("button", { name: "Lihat nomornya" }).click();
  await numberOn(to).getByTestId("pinned").filter({ hasText: `Disematkan ke ${to}` }).waitFor();
  await numberOn(from).waitFor({ state: "detached" });
  await shot("02-moved-pinned");

  // Unpinned.
  await numberOn(to).getByRole("button", { name: "Lepas sematan" }).click();
  await numberOn(to).getByTestId("pinned").waitFor({ state: "detached" });

  // Drained: the number goes back; undrained: the engine takes numbers
  // again.
  await engine(to).getByRole("button", { name: "Kuras mesin" }).click();
  await engine(to).getByRole("button", { name: "Ya, kuras" }).click();
  await fleet.locator(`[data-testid="engine-row"][data-engine-id="${to}"][data-drained="true"]`).getByText("Dikuras").waitFor();
  await numberOn(from).getByText(name).waitFor({ timeout: 30_000 });
  await numberOn(to).waitFor({ state: "detached" });
  await shot("03-drained");
  await engine(to).getByRole("button", { name: "Aktifkan lagi" }).click();
  await fleet.locator(`[data-testid="engine-row"][data-engine-id="${to}"][data-drained="false"]`).getByText("Hidup").waitFor();

  // Trust levels across tenants: found by name, raised to 4.
  const trust = page.getByTestId("trust-levels");
  await trust.getByRole("textbox", { name: "Cari nomor" }).fill(name);
  await trust.getByRole("button", { name: "Cari" }).click();
  const row = trust.locator(`[data-testid="trust-row"][data-session-id="${session}"]`);
  await row.getByText(name).waitFor();
  const set = row.getByRole("form", { name: `Tingkat kepercayaan ${name}` });
  await set.getByLabel("Tingkat baru").selectOption("4");
  await set.getByRole("button", { name: "Simpan tingkat" }).click();
  await row.getByRole("status").filter({ hasText: "Tersimpan: tingkat 4" }).waitFor();
  await trust.getByLabel("Tingkat", { exact: true }).selectOption("4");
  await trust.locator(`[data-testid="trust-row"][data-session-id="${session}"][data-trust-level="4"]`).waitFor();
  await shot("04-trust");
});
