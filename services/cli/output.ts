// How the CLI shows things: aligned tables, ages, sizes, short digests, JSON, and errors
// (`error: <message>` with one line per detail, and a stack only with KUMO_DEBUG=1).

import { inspect } from "node:util";
import { KumoApiError, KumoConnectionError } from "../api/index.ts";
import { KumoError } from "../model/index.ts";
import type { Condition, ErrorDetail } from "../model/index.ts";
import { UsageError } from "./args.ts";

/** Where output goes: process.stdout / process.stderr, or a buffer in tests. */
export interface Writer {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean;
}

/** The two output formats. */
export type OutputFormat = "table" | "json";

/** Rows as aligned columns under upper-case headers, two spaces apart; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** Pretty JSON with a trailing newline. */
/** Indents every non-empty line of `text`. */
export function indent(text: string, spaces: number): string {
  const pad = " ".repeat(spaces);
  return text
    .split("\n")
    .map((l) => (l === "" ? l : pad + l))
    .join("\n");
}

/** "Key:  value" lines with the values aligned. */
export function fields(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v}\n`).join("");
}

/** A "Conditions:" section: type=status, reason, age, then the full message indented. */
export function conditionsSection(conditions: readonly Condition[] | undefined, now: number, whenNone: string): string {
  let out = "\nConditions:\n";
  if (conditions === undefined || conditions.length === 0) out += `  ${whenNone}\n`;
  for (const c of conditions ?? []) {
    out += `  ${c.type}=${c.status}  ${c.reason}  (${formatAge(c.lastTransitionTime, now)} ago)\n`;
    if (c.message !== "") out += `${indent(c.message, 4)}\n`;
  }
  return out;
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Kubernetes-style age: 45s, 12m, 3h, 5d. */
export function formatAge(iso: string | undefined, now: number): string {
  if (iso === undefined) return "-";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "-";
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** A byte count: 512 B, 1.2 KiB, 3.4 MiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  return `${(bytes / (1024 * 1024 * 1024)).toFixed(1)} GiB`;
}

/** A duration in ms as people read it: 0.4 ms, 8.6 ms, 120 ms, 2.5 s. */
export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 10_000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** sha256:0123456789ab… : enough of a digest to recognise it. */
export function shortDigest(digest: string): string {
  const m = /^(sha256:)([0-9a-f]+)$/.exec(digest);
  if (m === null || m[2]!.length <= 12) return digest;
  return `${m[1]}${m[2]!.slice(0, 12)}…`;
}

/** The exit code for an error: 2 for usage errors, 130 for Ctrl-C, 1 for everything else. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof Error && err.name === "AbortError") return 130;
  return 1;
}

/** The text printed to stderr for an error. */
export function renderError(err: unknown, debug: boolean): string {
  if (err instanceof Error && err.name === "AbortError") return debug ? `${err.stack ?? err.message}\n` : "";
  const message = err instanceof Error ? err.message : String(err);
  let out = `error: ${message}\n`;
  let details: readonly ErrorDetail[] = [];
  if (err instanceof KumoApiError || err instanceof KumoError) details = err.details;
  const lines = details.map((d) => (d.field === undefined || d.field === "" ? d.message : `${d.field}: ${d.message}`));
  // A single problem is usually already the whole message; repeating it adds nothing.
  if (!(lines.length === 1 && message.includes(lines[0]!))) for (const l of lines) out += `  ${l}\n`;
  if (err instanceof UsageError) out += `Run 'kumo${err.command === "" ? "" : ` ${err.command}`} --help' for usage.\n`;
  if (debug && err instanceof Error) {
    out += `${err.stack ?? ""}\n`;
    if (err.cause !== undefined) out += `caused by: ${inspect(err.cause)}\n`;
  } else if (!isExpected(err)) {
    out += "(set KUMO_DEBUG=1 to see where it came from)\n";
  }
  return out;
}

/** Errors whose message says all there is to say; anything else may be a bug worth a stack. */
function isExpected(err: unknown): boolean {
  return err instanceof KumoApiError || err instanceof KumoError || err instanceof UsageError || err instanceof KumoConnectionError;
}
