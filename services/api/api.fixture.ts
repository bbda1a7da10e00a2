// A real api for tests: the express app over the embedded SQLite store in a temporary folder,
// listening on an ephemeral port. Used by the api and client tests only.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { FileBlobStore, openDatabase, openInvocationLog, openSqliteStore } from "../store/index.ts";
import type { SqliteInvocationLog, SqliteStore } from "../store/index.ts";
import { createApiApp } from "./index.ts";
import type { ApiDeps, ReadyReport } from "./index.ts";

/** A running test api and what it stands on. */
export interface TestApi {
  url: string;
  store: SqliteStore;
  blobs: FileBlobStore;
  invocations: SqliteInvocationLog;
  /** What /readyz reports; tests may change it. */
  readiness: ReadyReport;
  /** Errors the api logged as unexpected. */
  logged: string[];
  close(): Promise<void>;
}

/** Starts the api with `overrides` applied to its deps. */
export async function startTestApi(overrides: Partial<ApiDeps> = {}): Promise<TestApi> {
  const dir = await mkdtemp(join(tmpdir(), "kumo-api-"));
  const db = openDatabase(dir);
  const store = openSqliteStore({ db });
  const invocations = openInvocationLog({ db, flushIntervalMs: 1 });
  const blobs = new FileBlobStore(dir);
  const registry = new Registry();
  const stopping = new AbortController();
  const logged: string[] = [];
  const t: TestApi = {
    url: "",
    store,
    blobs,
    invocations,
    readiness: { ready: true, checks: { store: { ok: true, message: "sqlite" } } },
    logged,
    close: async () => {
      stopping.abort();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await invocations.close();
      await store.close();
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  const app = createApiApp({
    store,
    blobs,
    invocations,
    metrics: registry,
    ready: () => t.readiness,
    gatewayUrl: (ns, fn) => `http://gateway.test/${ns}/${fn}`,
    signal: stopping.signal,
    logError: (message) => logged.push(message),
    ...overrides,
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return t;
}
