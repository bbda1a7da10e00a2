// Test helpers for the CLI suites: run `kumo` with buffered output and a fixed clock, stand-in
// api servers, and small resource fixtures. Used by the cli tests only.

import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { InvocationRecord, KumoFunction } from "../model/index.ts";
import { runCli } from "./index.ts";

/** A Writer that keeps what was written. */
export class Buffered {
  text = "";
  readonly isTTY: boolean;
  constructor(isTTY = false) {
    this.isTTY = isTTY;
  }
  write(chunk: string | Uint8Array): boolean {
    this.text += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  }
}

/** The fixed "now" of every CLI test. */
export const NOW = Date.parse("2030-01-01T12:00:00.000Z");

/** Runs `kumo <args>` in-process and returns its exit code and output. */
export async function kumo(args: string[], options: { env?: Record<string, string>; cwd?: string; tty?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Buffered(options.tty ?? false);
  const stderr = new Buffered();
  const code = await runCli(args, { stdout, stderr, env: options.env ?? {}, cwd: options.cwd ?? process.cwd(), signal: new AbortController().signal, now: () => NOW });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** A well-formed digest. */
export const DIGEST = `sha256:${"ab".repeat(32)}`;

/** A function fixture, optionally with a Ready condition. */
export function fn(name: string, overrides: { ready?: "True" | "False"; reason?: string; message?: string; generation?: number; observed?: number } = {}): KumoFunction {
  const generation = overrides.generation ?? 1;
  return {
    apiVersion: "kumo.dev/v1",
    kind: "Function",
    metadata: { name, namespace: "default", uid: "u", resourceVersion: "7", generation, creationTimestamp: "2030-01-01T11:55:00.000Z" },
    spec: { source: { digest: DIGEST }, runtime: "isolate", env: { A: "1" }, limits: { timeoutMs: 30000, memoryMb: 128 }, concurrency: 100, scale: { min: 0, max: 10, target: 70, scaleToZeroGraceSeconds: 30 } },
    status:
      overrides.ready === undefined
        ? { url: `http://127.0.0.1:8080/default/${name}` }
        : {
            url: `http://127.0.0.1:8080/default/${name}`,
            observedGeneration: overrides.observed ?? generation,
            ...(overrides.ready === "True" ? { latestReadyRevision: `${name}-00001` } : {}),
            conditions: [{ type: "Ready", status: overrides.ready, reason: overrides.reason ?? "RevisionReady", message: overrides.message ?? "ok", lastTransitionTime: "2030-01-01T11:59:00.000Z" }],
          },
  };
}

/** An invocation record fixture. */
export function rec(id: string, extra: Partial<InvocationRecord> = {}): InvocationRecord {
  return { id, namespace: "default", function: "hello", revision: "hello-00001", start: "2030-01-01T11:59:59.000Z", durationMs: 12.34, outcome: "success", status: 200, coldStart: false, logs: [], ...extra };
}

/** A stand-in api: answers from a table of "METHOD path" handlers and records what it was asked. */
export async function stubServer(routes: Record<string, (req: IncomingMessage, body: string) => { status: number; body: unknown; headers?: Record<string, string> }>): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.setEncoding("latin1");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      const key = `${req.method} ${(req.url ?? "").split("?")[0]}`;
      seen.push(`${key}${req.headers.authorization === undefined ? "" : ` [${req.headers.authorization}]`}`);
      const handler = routes[key];
      const out = handler === undefined ? { status: 404, body: { error: { code: "KUMO_E_NOT_FOUND", message: `no route ${key}`, details: [] } } } : handler(req, body);
      res.writeHead(out.status, { "content-type": "application/json", ...out.headers }).end(typeof out.body === "string" ? out.body : JSON.stringify(out.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
