// `kumo server`: starts the whole platform in this process (the embedded shape) and stops it
// cleanly on Ctrl-C or SIGTERM.

import { parseWholeNumber, stringFlag } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext } from "./command.ts";

/** `kumo server [--port 8080] [--host 127.0.0.1] [--data-dir ./.kumo]` */
export const serverCommand: Command = {
  name: "server",
  summary: "Run the Kumo server (api, builder, gateway, autoscaler, event bus, dispatcher, providers) in this process",
  description:
    "Starts the api, the controller, the gateway with its autoscaler, the event bus, the dispatcher and the event providers " +
    "(HTTP POST /events, cron, and OpenStack when KUMO_OPENSTACK_AMQP_URL is set) in one process, with resources, invocation records, " +
    "events and artifacts in --data-dir. Function URLs are served on the same port at /<namespace>/<function>. Ctrl-C stops it cleanly. " +
    "The server also reads KUMO_* environment variables (see docs/configuration.md); flags win over them.",
  args: [],
  flags: {
    port: { type: "string", value: "<port>", help: "TCP port (env KUMO_PORT; default 8080; 0 picks a free one)" },
    host: { type: "string", value: "<address>", help: "address to listen on (env KUMO_HOST; default 127.0.0.1)" },
    "data-dir": { type: "string", value: "<dir>", help: "where data lives (env KUMO_DATA_DIR; default ./.kumo)" },
  },
  examples: ["kumo server", "kumo server --port 9000 --data-dir /var/lib/kumo", "KUMO_API_TOKEN=$(openssl rand -hex 32) kumo server --host 0.0.0.0"],
  run: runServer,
};

async function runServer(ctx: CommandContext, values: Values): Promise<number> {
  const overrides: { port?: number; host?: string; dataDir?: string } = {};
  const port = stringFlag(values, "port");
  if (port !== undefined) overrides.port = parseWholeNumber(port, "port", 0, 65535, "server");
  const host = stringFlag(values, "host");
  if (host !== undefined) overrides.host = host;
  const dataDir = stringFlag(values, "data-dir");
  if (dataDir !== undefined) overrides.dataDir = dataDir;
  // Loaded here, not at the top: every other command starts faster without the whole platform.
  const { loadServerConfig, startServer } = await import("../server/index.ts");
  const config = loadServerConfig({ ...ctx.env }, overrides);
  if (ctx.signal.aborted) return 0;
  const running = await startServer(config, (line) => ctx.stderr.write(`${line}\n`));
  ctx.stdout.write(`Kumo server listening on ${running.url} (data in ${config.dataDir}); Ctrl-C stops it\n`);
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  ctx.stderr.write("Stopping…\n");
  await running.close();
  ctx.stderr.write("Stopped.\n");
  return 0;
}
