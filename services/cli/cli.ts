// The `kumo` command line: finds the command, parses global and command flags, builds the api
// client, runs the command and turns any error into `error: …` on stderr and an exit code
// (0 ok, 1 failed, 2 usage error).

import packageJson from "../../package.json" with { type: "json" };
import { KumoClient } from "../api/index.ts";
import { closest, globalFlags, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Flags, FlagSpec, Values } from "./args.ts";
import type { Command, CommandContext } from "./command.ts";
import { commands } from "./commands.ts";
import { exitCodeOf, renderError } from "./output.ts";
import type { Writer } from "./output.ts";

/** The default server URL. */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** The process around the CLI; main.ts passes the real one, tests pass buffers. */
export interface CliIo {
  stdout: Writer;
  stderr: Writer;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal: AbortSignal;
  now?: () => number;
}

const VERSION = packageJson.version;

/** Runs `kumo <argv…>` and returns the exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const debug = io.env.KUMO_DEBUG === "1";
  try {
    const { name, rest } = splitCommand(argv);
    if (name === undefined) return topLevel(rest, io);
    const command = commands.find((c) => c.name === name);
    if (command === undefined) {
      const near = closest(name, commands.map((c) => c.name));
      throw new UsageError(`unknown command "${name}"${near === undefined ? "" : ` (did you mean "${near}"?)`}`);
    }
    const { values, positionals } = parseFlags(rest, { ...globalFlags, ...command.flags }, command.name);
    if (values.help === true) {
      io.stdout.write(commandHelp(command));
      return 0;
    }
    checkPositionals(command, positionals);
    return await command.run(context(command, values, io), values, positionals);
  } catch (err) {
    io.stderr.write(renderError(err, debug));
    return exitCodeOf(err);
  }
}

function topLevel(args: readonly string[], io: CliIo): number {
  const { values } = parseFlags(args, { ...globalFlags, version: { type: "boolean", help: "print the version" } }, "");
  if (values.version === true) {
    io.stdout.write(`kumo ${VERSION}\n`);
    return 0;
  }
  if (values.help === true) {
    io.stdout.write(mainHelp());
    return 0;
  }
  io.stderr.write(mainHelp());
  return 2;
}

/** Global flags that take a value, so the word after them is not the command. */
const globalValueFlags = new Set(
  Object.entries(globalFlags).flatMap(([name, f]) => (f.type === "string" ? [`--${name}`, ...(f.short === undefined ? [] : [`-${f.short}`])] : [])),
);

/** Finds the command word: the first argument that is neither a flag nor a global flag's value. */
export function splitCommand(argv: readonly string[]): { name: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a.startsWith("-")) {
      if (globalValueFlags.has(a)) i++;
      continue;
    }
    return { name: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { name: undefined, rest: [...argv] };
}

function checkPositionals(command: Command, positionals: readonly string[]): void {
  const missing = command.args.find((a, i) => a.required && positionals[i] === undefined);
  if (missing !== undefined) throw new UsageError(`missing <${missing.name}>: ${usageLine(command)}`, command.name);
  const extra = positionals[command.args.length];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}": ${usageLine(command)}`, command.name);
}

function context(command: Command, values: Values, io: CliIo): CommandContext {
  const output = stringFlag(values, "output") ?? "table";
  if (output !== "table" && output !== "json") throw new UsageError(`--output "${output}" is not a format: use table or json`, command.name);
  const server = (stringFlag(values, "server") ?? nonEmpty(io.env.KUMO_SERVER) ?? DEFAULT_SERVER).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/\s]+/.test(server)) throw new UsageError(`--server "${server}" is not a URL such as ${DEFAULT_SERVER}`, command.name);
  const token = stringFlag(values, "token") ?? nonEmpty(io.env.KUMO_API_TOKEN);
  const namespace = stringFlag(values, "namespace") ?? nonEmpty(io.env.KUMO_NAMESPACE) ?? "default";
  const client = new KumoClient({ server, signal: io.signal, ...(token === undefined ? {} : { token }) });
  return { client, server, token, namespace, output, stdout: io.stdout, stderr: io.stderr, env: io.env, cwd: io.cwd, signal: io.signal, now: io.now ?? Date.now };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === "" ? undefined : v;
}

function usageLine(command: Command): string {
  const args = command.args.map((a) => (a.required ? ` <${a.name}>` : ` [${a.name}]`)).join("");
  return `kumo ${command.name}${args} [flags]`;
}

function flagRows(flags: Flags): [string, string][] {
  return Object.entries(flags).map(([name, f]: [string, FlagSpec]) => {
    const long = f.negatable === true ? `--no-${name}` : `--${name}`;
    const names = f.short === undefined ? `    ${long}` : `-${f.short}, ${long}`;
    return [`${names}${f.value === undefined ? "" : ` ${f.value}`}`, `${f.help}${f.multiple === true ? " (repeatable)" : ""}`];
  });
}

function columns(rows: readonly [string, string][]): string {
  const width = Math.max(...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}\n`).join("");
}

/** `kumo <command> --help`. */
export function commandHelp(command: Command): string {
  let out = `Usage: ${usageLine(command)}\n\n${command.description}\n`;
  if (Object.keys(command.flags).length > 0) out += `\nFlags:\n${columns(flagRows(command.flags))}`;
  out += `\nGlobal flags:\n${columns(flagRows(globalFlags))}`;
  if (command.examples.length > 0) out += `\nExamples:\n${command.examples.map((e) => `  ${e}\n`).join("")}`;
  return out;
}

/** `kumo --help`. */
export function mainHelp(): string {
  const rows = commands.map((c): [string, string] => [c.name, c.summary]);
  return (
    `kumo ${VERSION}: deploy and run functions on a Kumo server\n\n` +
    `Usage: kumo <command> [flags]\n\nCommands:\n${columns(rows)}` +
    `\nGlobal flags:\n${columns(flagRows(globalFlags))}  ${"    --version".padEnd(Math.max(...flagRows(globalFlags).map(([a]) => a.length)))}  print the version\n` +
    `\nRun 'kumo <command> --help' for a command's flags and examples.\n`
  );
}
