// Phone numbers typed in any form an Indonesian shop owner writes them
// (0812-3456-7890, 62 812 3456 7890, +62 (812) 3456-7890, 812345678...)
// turned into E.164, which the API takes. The API still checks the
// result is a valid mobile number.

/** `input` as E.164 (`+6281234567890`), or null when it cannot be one. */
export function toE164(input: string, countryCode = "62"): string | null {
  const text = input.trim();
  if (text === "" || /[^\d\s\-.()+/]/.test(text)) return null;
  if (text.indexOf("+") > 0 || (text.match(/\+/g) ?? []).length > 1) return null;
  let digits = text.replace(/\D/g, "");
  if (text.startsWith("+")) {
    // Already international.
  } else if (digits.startsWith("00")) {
    digits = digits.slice(2);
  } else if (digits.startsWith("0")) {
    digits = countryCode + digits.slice(1);
  } else if (!digits.startsWith(countryCode)) {
    digits = countryCode + digits;
  }
  // "+62 0812...": the trunk zero has no place after the country code.
  if (digits.startsWith(`${countryCode}0`)) digits = countryCode + digits.slice(countryCode.length + 1);
  if (digits.length < 9 || digits.length > 15) return null;
  return `+${digits}`;
}
