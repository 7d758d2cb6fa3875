import type { SelectHTMLAttributes } from "react";
import { Labelled } from "./ui";

/** A labelled dropdown with its error (or hint) tied to it for screen readers. */
export function SelectField({
  label,
  error,
  hint,
  children,
  ...select
}: { label: string; error?: string; hint?: string } & SelectHTMLAttributes<HTMLSelectElement>) {
  return (
    <Labelled
      label={label}
      error={error}
      hint={hint}
      control={(tied) => (
        <select className="input" {...tied} {...select}>
          {children}
        </select>
      )}
    />
  );
}
