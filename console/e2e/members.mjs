// The console's team journey, in Debian's Chromium (./harness.mjs): the
// owner invites a member on the Team page and gets the link once; the
// invitee opens it signed out, chooses a password and lands signed in; as
// a member it sees the team but manages nothing; the owner, the last one,
// is refused stepping down (`last_owner`), then removes the member.
//
// Run by tests/e2e/console_members.rs. Environment: WABLAST_CONSOLE_EMAIL
// and WABLAST_CONSOLE_PASSWORD (the owner), WABLAST_CONSOLE_INVITEE (the
// email to invite), and the harness's.

import { journey, required } from "./harness.mjs";

const email = required("WABLAST_CONSOLE_EMAIL");
const password = required("WABLAST_CONSOLE_PASSWORD");
const invitee = required("WABLAST_CONSOLE_INVITEE");

function check(condition, what) {
  if (!condition) throw new Error(what);
}

await journey("members", async ({ page, dialog, shot, heading, nav, signIn, expectHttpErrors }) => {
  // — The owner invites. —
  await signIn(email, password);
  await nav("Tim").click();
  await heading("Tim").waitFor();
  const members = page.getByTestId("member");
  await members.filter({ hasText: email }).waitFor();
  const form = page.getByRole("form", { name: "Undang" });
  await form.getByLabel("Email").fill(invitee);
  await form.getByRole("button", { name: "Undang" }).click();
  const link = await dialog.getByTestId("invitation-link").getByRole("textbox").inputValue();
  check(/\/accept-invite\?token=wbi_[0-9a-f]{128}$/.test(link), `the link is ${link}`);
  await shot("01-invited");
  await dialog.getByRole("button", { name: "Selesai" }).click();
  await page.getByTestId("invitation").filter({ hasText: invitee }).waitFor();

  // — The invitee joins from the link, signed out. —
  await page.getByRole("button", { name: "Keluar", exact: true }).click();
  await page.waitForURL(/\/login$/);
  await page.goto(link);
  await heading("Gabung ke tim").waitFor();
  await page.getByLabel("Kata sandi").fill("kata-sandi-sari");
  await page.getByRole("button", { name: "Gabung" }).click();
  await heading("Dasbor").waitFor();
  await nav("Tim").click();
  await heading("Tim").waitFor();
  await page.getByText("Hanya pemilik yang bisa mengundang, mengubah peran, atau mengeluarkan anggota.").waitFor();
  await members.filter({ hasText: invitee }).waitFor();
  check((await page.getByRole("form", { name: "Undang" }).count()) === 0, "a member is offered the invitation form");
  check((await page.getByRole("button", { name: `Keluarkan ${email}` }).count()) === 0, "a member is offered removal");
  await shot("02-member");

  // — The owner: the last owner stays; then the member is removed. —
  await page.getByRole("button", { name: "Keluar", exact: true }).click();
  await signIn(email, password);
  await nav("Tim").click();
  await heading("Tim").waitFor();
  expectHttpErrors(1);
  await page.getByLabel(`Peran ${email}`).selectOption("member");
  await page.getByText("Tim harus punya setidaknya satu pemilik. Jadikan anggota lain pemilik dulu.").waitFor();
  await shot("03-last-owner");
  await page.getByRole("button", { name: `Keluarkan ${invitee}` }).click();
  await dialog.getByRole("button", { name: "Ya, keluarkan" }).click();
  await members.filter({ hasText: invitee }).waitFor({ state: "detached" });
  check((await members.count()) === 1, "the removed member is still listed");
  await shot("04-removed");
});
