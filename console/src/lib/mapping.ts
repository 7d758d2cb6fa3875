// The column mapping of a contact import: which column of the file is the
// phone, the name, the consent and the template variables, guessed from
// the header the way the API guesses it, chosen by the owner, then sent
// as the `mapping` field `POST /api/v1/contact-lists/import` expects.

/** What the owner chose: column names (as in the header), "" for none. */
export interface MappingChoice {
  phone: string;
  name: string;
  consent: string;
  variables: string[];
}

/** The API's `mapping` JSON. */
export interface ApiMapping {
  phone: string;
  name?: string;
  consent: string;
  variables: string[];
}

const PHONE_NAMES = ["phone", "phone_e164", "nomor", "no_hp", "whatsapp"];
const NAME_NAMES = ["name", "nama"];
const CONSENT_NAMES = ["consent", "persetujuan"];

/** Whether a column's name can be a template variable (the API's rule). */
export function isVariableName(column: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(column) && !/^(name|phone)$/i.test(column);
}

function findColumn(header: readonly string[], names: readonly string[]): string {
  for (const wanted of names) {
    const found = header.find((column) => column.trim().toLowerCase() === wanted);
    if (found !== undefined) return found;
  }
  return "";
}

/** The mapping the API would take by default for `header`, as a choice. */
export function guessMapping(header: readonly string[]): MappingChoice {
  const phone =
    findColumn(header, PHONE_NAMES) ||
    header.find((column) => /\b(hp|wa|telp|telepon|phone|nomor|no\.?)\b/i.test(column)) ||
    "";
  const name = findColumn(header, NAME_NAMES);
  const consent = findColumn(header, CONSENT_NAMES) || header.find((column) => /setuju|izin|opt.?in/i.test(column)) || "";
  const taken = new Set([phone, name, consent]);
  const variables = header.filter((column) => column !== "" && !taken.has(column) && isVariableName(column));
  return { phone, name, consent, variables };
}

export type MappingProblem = "phone_missing" | "consent_missing" | "same_column" | "bad_variable";

/** What is wrong with `choice`, field by field (empty when it can be sent). */
export function mappingProblems(choice: MappingChoice): Partial<Record<"phone" | "name" | "consent" | "variables", MappingProblem>> {
  const problems: Partial<Record<"phone" | "name" | "consent" | "variables", MappingProblem>> = {};
  if (!choice.phone) problems.phone = "phone_missing";
  if (!choice.consent) problems.consent = "consent_missing";
  else if (choice.consent === choice.phone) problems.consent = "same_column";
  if (choice.name && (choice.name === choice.phone || choice.name === choice.consent)) problems.name = "same_column";
  if (choice.variables.some((v) => !isVariableName(v))) problems.variables = "bad_variable";
  return problems;
}

/**
 * The `mapping` to send: every key explicit (so the API guesses nothing),
 * variables without the columns chosen for phone, name or consent, in the
 * header's order.
 */
export function buildMapping(choice: MappingChoice, header: readonly string[]): ApiMapping {
  const used = new Set([choice.phone, choice.name, choice.consent]);
  const chosen = new Set(choice.variables);
  const variables = header.filter((column) => chosen.has(column) && !used.has(column));
  return {
    phone: choice.phone,
    ...(choice.name ? { name: choice.name } : {}),
    consent: choice.consent,
    variables,
  };
}
