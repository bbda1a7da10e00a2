// The `kumo` command line: finds the command, parses global and command flags, builds the api
// client, runs the command and turns any error into `error: …` on stderr and an exit code
// (0 ok, 1 failed, 2 usage error).

import packageJson from "../../package.json" with { type: "json" };
import { KumoClient } from "../api/index.ts";
import { closest, globalFlags, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Flags, FlagSpec, Values } from "./args.ts";
import { isGroup } from "./command.ts";
import type { Command, CommandContext, CommandGroup } from "./command.ts";
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
    const entry = commands.find((c) => c.name === name);
    if (entry === undefined) {
      const near = closest(name, commands.map((c) => c.name));
      throw new UsageError(`unknown command "${name}"${near === undefined ? "" : ` (did you mean "${near}"?)`}`);
    }
    let command: Command;
    let fullName = entry.name;
    let args = rest;
    if (isGroup(entry)) {
      const sub = splitCommand(rest);
      if (sub.name === undefined) return groupLevel(entry, sub.rest, io);
      const found = entry.subcommands.find((c) => c.name === sub.name);
      if (found === undefined) {
        const names = entry.subcommands.map((c) => c.name);
        const near = closest(sub.name, names);
        throw new UsageError(`unknown command "${entry.name} ${sub.name}"${near === undefined ? "" : ` (did you mean "${entry.name} ${near}"?)`}: use one of ${names.join(", ")}`, entry.name);
      }
      command = found;
      fullName = `${entry.name} ${found.name}`;
      args = sub.rest;
    } else command = entry;
    const { values, positionals } = parseFlags(args, { ...globalFlags, ...command.flags }, fullName);
    if (values.help === true) {
      io.stdout.write(commandHelp(command, fullName));
      return 0;
    }
    checkPositionals(command, fullName, positionals);
    return await command.run(context(fullName, values, io), values, positionals);
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

function groupLevel(group: CommandGroup, args: readonly string[], io: CliIo): number {
  const { values } = parseFlags(args, globalFlags, group.name);
  if (values.help === true) {
    io.stdout.write(groupHelp(group));
    return 0;
  }
  io.stderr.write(groupHelp(group));
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

function checkPositionals(command: Command, fullName: string, positionals: readonly string[]): void {
  const missing = command.args.find((a, i) => a.required && positionals[i] === undefined);
  if (missing !== undefined) throw new UsageError(`missing <${missing.name}>: ${usageLine(command, fullName)}`, fullName);
  if (command.args[command.args.length - 1]?.variadic === true) return;
  const extra = positionals[command.args.length];
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}": ${usageLine(command, fullName)}`, fullName);
}

function context(commandName: string, values: Values, io: CliIo): CommandContext {
  const output = stringFlag(values, "output") ?? "table";
  if (output !== "table" && output !== "json") throw new UsageError(`--output "${output}" is not a format: use table or json`, commandName);
  const server = (stringFlag(values, "server") ?? nonEmpty(io.env.KUMO_SERVER) ?? DEFAULT_SERVER).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/\s]+/.test(server)) throw new UsageError(`--server "${server}" is not a URL such as ${DEFAULT_SERVER}`, commandName);
  const token = stringFlag(values, "token") ?? nonEmpty(io.env.KUMO_API_TOKEN);
  const namespace = stringFlag(values, "namespace") ?? nonEmpty(io.env.KUMO_NAMESPACE) ?? "default";
  const client = new KumoClient({ server, signal: io.signal, ...(token === undefined ? {} : { token }) });
  return { client, server, token, namespace, output, stdout: io.stdout, stderr: io.stderr, env: io.env, cwd: io.cwd, signal: io.signal, now: io.now ?? Date.now };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === "" ? undefined : v;
}

function usageLine(command: Command, fullName: string): string {
  const args = command.args.map((a) => (a.required ? ` <${a.name}>` : ` [${a.name}]`) + (a.variadic === true ? "..." : "")).join("");
  return `kumo ${fullName}${args} [flags]`;
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

/** `kumo <command> --help` (`fullName` is "trigger create" for a subcommand). */
export function commandHelp(command: Command, fullName = command.name): string {
  let out = `Usage: ${usageLine(command, fullName)}\n\n${command.description}\n`;
  if (Object.keys(command.flags).length > 0) out += `\nFlags:\n${columns(flagRows(command.flags))}`;
  out += `\nGlobal flags:\n${columns(flagRows(globalFlags))}`;
  if (command.examples.length > 0) out += `\nExamples:\n${command.examples.map((e) => `  ${e}\n`).join("")}`;
  return out;
}

/** `kumo <group> --help`: the group's subcommands. */
export function groupHelp(group: CommandGroup): string {
  const rows = group.subcommands.map((c): [string, string] => [`${group.name} ${c.name}`, c.summary]);
  return (
    `Usage: kumo ${group.name} <command> [flags]\n\n${group.description}\n\nCommands:\n${columns(rows)}` +
    `\nGlobal flags:\n${columns(flagRows(globalFlags))}` +
    `\nRun 'kumo ${group.name} <command> --help' for a command's flags and examples.\n`
  );
}

/** `kumo --help`. */
export function mainHelp(): string {
  const rows = commands.flatMap((c): [string, string][] => (isGroup(c) ? c.subcommands.map((s): [string, string] => [`${c.name} ${s.name}`, s.summary]) : [[c.name, c.summary]]));
  return (
    `kumo ${VERSION}: deploy and run functions on a Kumo server\n\n` +
    `Usage: kumo <command> [flags]\n\nCommands:\n${columns(rows)}` +
    `\nGlobal flags:\n${columns(flagRows(globalFlags))}  ${"    --version".padEnd(Math.max(...flagRows(globalFlags).map(([a]) => a.length)))}  print the version\n` +
    `\nRun 'kumo <command> --help' for a command's flags and examples.\n`
  );
}
