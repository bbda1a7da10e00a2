// Command-line arguments: flag declarations with their help text, parsing with node:util
// parseArgs, and the value parsers (durations, sizes, NAME=value pairs) that turn a bad value
// into a usage error naming the flag and the fix.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";

/** A mistake in how the command was typed; exit code 2 with a hint to --help. */
export class UsageError extends Error {
  /** The command whose --help the hint points to ("" for `kumo --help`). */
  readonly command: string;
  constructor(message: string, command = "") {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** One flag: its parseArgs shape and its help line. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** A boolean that defaults to true; help shows it as --no-<name>. */
  negatable?: boolean;
  /** Placeholder shown in help, e.g. "<ms>". */
  value?: string;
  help: string;
}

/** Flags by long name. */
export type Flags = Record<string, FlagSpec>;

/** Flags every command takes. */
export const globalFlags: Flags = {
  server: { type: "string", value: "<url>", help: "Kumo server URL (env KUMO_SERVER; default http://127.0.0.1:8080)" },
  token: { type: "string", value: "<token>", help: "api token (env KUMO_API_TOKEN)" },
  namespace: { type: "string", short: "n", value: "<ns>", help: "namespace (default \"default\")" },
  output: { type: "string", short: "o", value: "table|json", help: "output format (default table)" },
  help: { type: "boolean", short: "h", help: "show help" },
};

/** Parsed values: strings, booleans, or lists of strings for repeatable flags. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** Parses `args` against `flags`; unknown flags and missing values become UsageErrors. */
export function parseFlags(args: readonly string[], flags: Flags, command: string): { values: Values; positionals: string[] } {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const [name, f] of Object.entries(flags)) {
    options[name] = { type: f.type, ...(f.short === undefined ? {} : { short: f.short }), ...(f.multiple === true ? { multiple: true } : {}) };
  }
  try {
    const parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true, allowNegative: true });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError(describeParseError(err, flags), command);
  }
}

function describeParseError(err: unknown, flags: Flags): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown !== null) {
    const flag = unknown[1]!;
    const near = closest(flag.replace(/^-+/, ""), Object.keys(flags));
    return `unknown flag ${flag}${near === undefined ? "" : ` (did you mean --${near}?)`}`;
  }
  const missing = /Option '(-\w, )?(--[\w-]+)[^']*' argument missing/.exec(message);
  if (missing !== null) return `flag ${missing[2]} needs a value`;
  const negated = /Option '(--no-[\w-]+)' does not take an argument/.exec(message);
  if (negated !== null) return `flag ${negated[1]} takes no value`;
  const boolWithValue = /Option '(-\w, )?(--[\w-]+)' does not take an argument/.exec(message);
  if (boolWithValue !== null) return `flag ${boolWithValue[2]} takes no value`;
  return message;
}

/** The candidate nearest to `word` by edit distance, if near enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** A string flag's value, if given. */
export function stringFlag(values: Values, name: string): string | undefined {
  const v = values[name];
  if (Array.isArray(v)) return v[v.length - 1];
  return typeof v === "string" ? v : undefined;
}

/** A repeatable flag's values (empty when not given). */
export function listFlag(values: Values, name: string): string[] {
  const v = values[name];
  if (Array.isArray(v)) return v;
  return typeof v === "string" ? [v] : [];
}

/** A boolean flag's value, or `fallback` when not given. */
export function booleanFlag(values: Values, name: string, fallback: boolean): boolean {
  const v = values[name];
  return typeof v === "boolean" ? v : fallback;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "500", "500ms", "30s", "1.5s", "2m", "1h" into milliseconds (a bare number is ms). */
export function parseDuration(raw: string, flag: string, command = ""): number {
  const m = DURATION.exec(raw.trim());
  if (m === null) throw new UsageError(`--${flag} "${raw}" is not a duration: use milliseconds (500) or a number with a unit (500ms, 30s, 2m, 1h)`, command);
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? "ms"]!);
  return ms;
}

/** Parses a whole number flag within bounds. */
export function parseWholeNumber(raw: string, flag: string, min: number, max: number, command = ""): number {
  const n = Number(raw.trim());
  if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} "${raw}" is not valid: use a whole number from ${min} to ${max}`, command);
  }
  return n;
}

/** Splits "NAME=value" (or "Name:value" with sep ":") at the first separator. */
export function parsePair(raw: string, flag: string, sep: "=" | ":", command = ""): [string, string] {
  const i = raw.indexOf(sep);
  if (i <= 0) {
    const example = sep === "=" ? "NAME=value" : "Name: value";
    throw new UsageError(`--${flag} "${raw}" is not ${example}`, command);
  }
  const key = raw.slice(0, i).trim();
  const value = sep === ":" ? raw.slice(i + 1).trim() : raw.slice(i + 1);
  return [key, value];
}

/** Parses repeated NAME=value flags into an object; a repeated name keeps the last value. */
export function parsePairs(raws: readonly string[], flag: string, command = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of raws) {
    const [k, v] = parsePair(raw, flag, "=", command);
    out[k] = v;
  }
  return out;
}

/** A `--data` value: JSON when it parses, else text; `@path` reads a file relative to `cwd`. */
export async function readDataFlag(raw: string, flag: string, command: string, cwd: string): Promise<{ data: unknown; contentType: string }> {
  let text = raw;
  if (raw.startsWith("@")) {
    const file = path.resolve(cwd, raw.slice(1));
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      throw new UsageError(`--${flag} ${raw}: cannot read ${file}: ${(err as Error).message}`, command);
    }
  }
  try {
    return { data: JSON.parse(text) as unknown, contentType: "application/json" };
  } catch (err) {
    // Text that was meant to be JSON but is broken must not travel silently as a string.
    if (/^\s*[[{"]/.test(text)) throw new UsageError(`--${flag} is not valid JSON: ${(err as Error).message}`, command);
    return { data: text, contentType: "text/plain; charset=utf-8" };
  }
}
