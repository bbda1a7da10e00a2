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
}

/** One `kumo <name>` command. */
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
