// The `kumo` command line. main.ts wires it to the process; tests call runCli with buffers.
export { runCli, DEFAULT_SERVER, mainHelp, commandHelp, groupHelp } from "./cli.ts";
export type { CliIo } from "./cli.ts";
export { commands } from "./commands.ts";
export type { Command, CommandContext, CommandEntry, CommandGroup } from "./command.ts";
