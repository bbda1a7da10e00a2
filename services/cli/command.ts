// What a CLI command is: its flags, positional arguments, help text, and a run function that
// gets a context (client, namespace, output format, writers) and returns an exit code.

import type { KumoClient } from "../api/index.ts";
import type { Flags, Values } from "./args.ts";
import type { OutputFormat, Writer } from "./output.ts";

/** Everything a command may use; tests build one with buffers for stdout and stderr. */
export interface CommandContext {
  client: KumoClient;
  server: string;
  token: string | undefined;
  namespace: string;
  output: OutputFormat;
  stdout: Writer;
  stderr: Writer;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal: AbortSignal;
  /** Milliseconds since the epoch (injected so output with ages can be tested). */
  now: () => number;
}

/** A positional argument. */
export interface ArgSpec {
  name: string;
  required: boolean;
  /** The last argument only: takes every remaining positional (`<rev=percent>...`). */
  variadic?: boolean;
}

/** `kumo <name> <subcommand> …`: a family of commands under one word, such as `kumo trigger create`. */
export interface CommandGroup {
  name: string;
  /** One line for `kumo --help` (which also lists each subcommand). */
  summary: string;
  /** A paragraph for `kumo <name> --help`. */
  description: string;
  /** Each one's `name` is the word after the group's (`create`). */
  subcommands: readonly Command[];
}

/** A top-level entry of the command table. */
export type CommandEntry = Command | CommandGroup;

/** True when the entry is a group of subcommands. */
export function isGroup(entry: CommandEntry): entry is CommandGroup {
  return "subcommands" in entry;
}

/** One `kumo <name>` command (or, inside a group, `kumo <group> <name>`). */
export interface Command {
  name: string;
  /** One line for `kumo --help`. */
  summary: string;
  /** A paragraph for `kumo <name> --help`. */
  description: string;
  args: readonly ArgSpec[];
  flags: Flags;
  examples: readonly string[];
  /** Runs with parsed flags and positionals (already checked against `args`); returns the exit code. */
  run(ctx: CommandContext, values: Values, positionals: readonly string[]): Promise<number>;
}
