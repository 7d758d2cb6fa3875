import { describe, expect, it } from "vitest";
import type { Campaign } from "../api/types";
import { translate, type Translate } from "../i18n";
import { campaignWaitText } from "./Campaign";

const t: Translate = (key, vars) => translate("id", key, vars);
const date = (iso: string) => iso.slice(11, 16);

const campaign = (over: Partial<Campaign>): Campaign => ({
  id: "c1",
  name: "Promo",
  status: "running",
  contact_list_id: "l1",
  template: "Halo {{name}}",
  media_id: null,
  sender_session_ids: ["s1"],
  throttle: { min_delay_ms: 2000, max_delay_ms: 5000 },
  scheduled_at: null,
  counts: { total: 3, queued: 3, sending: 0, sent: 0, delivered: 0, read: 0, failed: 0, cancelled: 0, unknown: 0 },
  points_reserved: 6,
  points_spent: 0,
  pause_reason: null,
  resume_at: null,
  created_at: "2026-12-07T08:00:00Z",
  started_at: "2026-12-07T08:00:00Z",
  finished_at: null,
  updated_at: "2026-12-07T08:00:00Z",
  start_refusal: null,
  waiting: null,
  ...over,
});

describe("why a campaign waits", () => {
  it("says nothing while it sends", () => {
    expect(campaignWaitText(t, date, campaign({}))).toBeNull();
  });

  it("names what every sender waits for, and until when", () => {
    expect(
      campaignWaitText(t, date, campaign({ waiting: { reason: "outside_active_hours", until: "2026-12-08T02:00:00Z" } })),
    ).toBe("Menunggu: di luar jam aktif sampai 02:00.");
    expect(campaignWaitText(t, date, campaign({ waiting: { reason: "daily_limit_reached", until: null } }))).toBe(
      "Menunggu: batas kirim harian nomor pengirim sudah tercapai.",
    );
    expect(campaignWaitText(t, date, campaign({ waiting: { reason: "something_new", until: null } }))).toBe(
      "Menunggu (something_new).",
    );
  });

  it("says who paused it and why", () => {
    expect(campaignWaitText(t, date, campaign({ status: "paused", pause_reason: { kind: "manual" } }))).toBe(
      "Dijeda oleh Anda. Lanjutkan kapan saja.",
    );
    expect(
      campaignWaitText(
        t,
        date,
        campaign({ status: "paused", pause_reason: { kind: "auto_consecutive_failures", failures: 3 }, resume_at: "2026-12-07T08:01:00Z" }),
      ),
    ).toBe("Dijeda otomatis setelah 3 pengiriman gagal berturut-turut. Lanjut sendiri 08:01.");
    expect(
      campaignWaitText(t, date, campaign({ status: "paused", pause_reason: { kind: "sender_unavailable", session_id: "s1", why: "banned" } })),
    ).toBe("Dijeda: nomor pengirim diblokir WhatsApp dan tidak ada pengirim lain.");
  });

  it("says a scheduled start was refused for want of points", () => {
    expect(
      campaignWaitText(
        t,
        date,
        campaign({ status: "draft", start_refusal: { code: "insufficient_points", message: "not enough", at: "2026-12-07T08:00:00Z" } }),
      ),
    ).toBe("Mulai terjadwal ditolak: Poin tidak cukup. Kampanye kembali menjadi draf.");
  });
});
