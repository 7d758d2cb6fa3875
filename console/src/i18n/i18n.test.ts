import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import { errorText, formErrors, translate, type Translate } from "./index";
import { messages, type MessageKey } from "./messages";

const t: Translate = (key, vars) => translate("id", key, vars);
const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("the message table", () => {
  it("has every text in both languages with the same placeholders", () => {
    for (const key of Object.keys(messages.id) as MessageKey[]) {
      expect(messages.en[key], key).toBeTruthy();
      expect(placeholders(messages.en[key]), key).toEqual(placeholders(messages.id[key]));
    }
    expect(Object.keys(messages.en).sort()).toEqual(Object.keys(messages.id).sort());
  });

  it("fills placeholders", () => {
    expect(translate("en", "numbers.sentToday", { sent: 3, limit: 50 })).toBe("Sent today: 3 / 50");
  });
});

describe("errors", () => {
  const short = new ApiError(400, "validation_failed", "the password needs at least 8 characters", { field: "password" });

  it("names the field's problem in the table's words", () => {
    expect(errorText(t, short)).toBe("Kata sandi minimal 8 karakter.");
  });

  it("falls back to the code, then to the API's message", () => {
    expect(errorText(t, new ApiError(422, "plan_expired", "expired"))).toBe("Paket Anda sudah berakhir.");
    expect(errorText(t, new ApiError(422, "something_new", "the API's words"))).toBe("the API's words");
    expect(errorText(t, new Error("x"))).toBe("Terjadi kesalahan. Coba lagi.");
  });

  it("puts an error next to its field when the form has it, else on the form", () => {
    expect(formErrors(t, short, ["email", "password"])).toEqual({ fields: { password: "Kata sandi minimal 8 karakter." } });
    expect(formErrors(t, short, ["email"]).form).toBe("Kata sandi minimal 8 karakter.");
    expect(formErrors(t, null, ["email"])).toEqual({ fields: {} });
  });
});
