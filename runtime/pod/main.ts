// Entrypoint of a function instance's process (a worker of `kumo server`, or the pod image): reads
// KUMO_POD_*, loads the bundle, serves it and prints one ready line on stdout. Wiring only.

import { fdLogSink, loadPodConfig, startPodServer, REPLACED_EXIT_CODE } from "./index.ts";

function fail(err: unknown): never {
  process.stdout.write(JSON.stringify({ ready: false, error: err instanceof Error ? err.message : String(err) }) + "\n");
  process.exit(1);
}

let server: Awaited<ReturnType<typeof startPodServer>>;
try {
  const config = loadPodConfig(process.env);
  server = await startPodServer({
    spec: config.spec,
    ...(config.socketPath === undefined ? { port: config.port, host: config.host } : { socketPath: config.socketPath }),
    ...(config.logFd === undefined ? {} : { logSink: fdLogSink(config.logFd) }),
    onReplaced: () => process.exit(REPLACED_EXIT_CODE),
  });
} catch (err) {
  fail(err);
}
process.stdout.write(server.readyLine + "\n");

process.once("SIGTERM", () => {
  void server.close().then(() => process.exit(0));
});
