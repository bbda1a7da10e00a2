// The command table: every `kumo` command, in the order `kumo --help` lists them. A new command
// is one file and one line here; a family of subcommands (`kumo trigger create`) is a CommandGroup.

import type { CommandEntry } from "./command.ts";
import { deployCommand } from "./deploy.ts";
import { describeCommand } from "./describe.ts";
import { eventsCommand } from "./events.ts";
import { invokeCommand } from "./invoke.ts";
import { deleteCommand, listCommand, revisionsCommand } from "./list.ts";
import { logsCommand } from "./logs.ts";
import { serverCommand } from "./server.ts";
import { rollbackCommand, trafficCommand } from "./traffic.ts";
import { triggerCommand } from "./trigger.ts";

/** Every command, in help order. */
export const commands: readonly CommandEntry[] = [
  serverCommand,
  deployCommand,
  invokeCommand,
  listCommand,
  describeCommand,
  logsCommand,
  revisionsCommand,
  deleteCommand,
  trafficCommand,
  rollbackCommand,
  triggerCommand,
  eventsCommand,
];
