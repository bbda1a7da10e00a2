// The embedded composition root: `kumo server` hosts the api, the controller and the gateway in
// one Node process, on one port. Requests under /apis, /healthz, /readyz and /metrics go to the
// api; everything else is a function URL and goes to the gateway.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { Registry, collectDefaultMetrics } from "prom-client";
import { createApiApp } from "../api/index.ts";
import { buildFunction, unpackSource } from "../builder/index.ts";
import { Controller } from "../controller/index.ts";
import { createGateway, createGatewayMetrics, RouteTable } from "../gateway/index.ts";
import { systemClock, type InstanceBackend, type RuntimeKind } from "../model/index.ts";
import { FileBlobStore, openDatabase, openInvocationLog, openSqliteStore } from "../store/index.ts";
import { createIsolateBackend } from "../../runtime/isolate/index.ts";
import type { ServerConfig } from "./config.ts";

/** A running server. */
export interface RunningServer {
  /** Where the api and function URLs are served, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting requests, drains in-flight ones, flushes records and closes the database. */
  close(): Promise<void>;
}

function isApiPath(url: string): boolean {
  return url.startsWith("/apis/") || url === "/apis" || url.startsWith("/healthz") || url.startsWith("/readyz") || url.startsWith("/metrics");
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolveListen((server.address() as AddressInfo).port);
    });
  });
}

/** Starts everything and resolves once the server answers. */
export async function startServer(config: ServerConfig, log: (line: string) => void = (l) => console.error(l)): Promise<RunningServer> {
  const clock = systemClock;
  const dataDir = resolve(config.dataDir);
  const db = openDatabase(dataDir);
  const store = openSqliteStore({ db });
  const invocations = openInvocationLog({ db, retentionPerFunction: config.invocationRetention });
  const blobs = new FileBlobStore(dataDir);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "kumo_process_" });
  const gatewayMetrics = createGatewayMetrics(registry);
  const isolate = createIsolateBackend();
  const backends: Record<RuntimeKind, InstanceBackend | undefined> = { isolate, process: undefined };

  let state: "starting" | "ready" | "stopping" = "starting";
  const routes = new RouteTable({
    store,
    blobs,
    backends,
    metrics: gatewayMetrics,
    clock,
    defaults: { queueLimit: config.queueLimit, queueTimeoutMs: config.queueTimeoutMs },
  });

  let baseUrl = "";
  const shutdown = new AbortController();
  const functionUrl = (ns: string, fn: string): string => `${baseUrl}/${ns}/${fn}`;
  const api = createApiApp({
    store,
    blobs,
    invocations,
    metrics: registry,
    ...(config.apiToken !== undefined ? { token: config.apiToken } : {}),
    maxSourceBytes: config.maxSourceBytes,
    signal: shutdown.signal,
    gatewayUrl: functionUrl,
    ready: () => ({
      ready: state === "ready",
      checks: {
        server: { ok: state === "ready", message: state },
        store: { ok: true, message: `sqlite at ${dataDir}` },
      },
    }),
  });
  const gateway = createGateway({ routes, invocations, metrics: gatewayMetrics, options: { maxBodyBytes: config.gatewayMaxBodyBytes } });

  const server = createServer({ keepAliveTimeout: 65_000 }, (req: IncomingMessage, res: ServerResponse) => {
    if (isApiPath(req.url ?? "/")) api(req, res);
    else gateway(req, res);
  });
  const port = await listen(server, config.port, config.host);
  const shownHost = config.host.includes(":") ? `[${config.host}]` : config.host;
  baseUrl = config.publicUrl ?? `http://${shownHost}:${port}`;

  const controller = new Controller({
    store,
    blobs,
    builder: { buildFunction, unpackSource },
    backends,
    clock,
    functionUrl,
    routed: (ns, fn, rev) => routes.whenRouted(ns, fn, rev),
    log,
  });
  await routes.start();
  await controller.start();
  state = "ready";

  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close() {
      closing ??= (async () => {
        state = "stopping";
        shutdown.abort(); // ends `kumo logs --follow` streams
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await controller.stop();
        await routes.stop();
        await closed;
        await isolate.close();
        await invocations.close();
        await store.close();
        db.close();
      })();
      return closing;
    },
  };
}
