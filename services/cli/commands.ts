// The command table: every `kumo` command, in the order `kumo --help` lists them. A new command
// (triggers, traffic) is one file and one line here.

import type { Command } from "./command.ts";
import { deployCommand } from "./deploy.ts";
import { describeCommand } from "./describe.ts";
import { invokeCommand } from "./invoke.ts";
import { deleteCommand, listCommand, revisionsCommand } from "./list.ts";
import { logsCommand } from "./logs.ts";
import { serverCommand } from "./server.ts";

/** Every command, in help order. */
export const commands: readonly Command[] = [serverCommand, deployCommand, invokeCommand, listCommand, describeCommand, logsCommand, revisionsCommand, deleteCommand];
