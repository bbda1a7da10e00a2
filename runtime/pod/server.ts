// The worker runtime's HTTP server: one revision's handler behind `POST /invoke` (an InvokeRequest
// in, an InvokeResult out) and `GET /healthz`. The same server runs as a child of `kumo server`
// (on a unix socket) and in the pod image (on a TCP port).

import type { IncomingMessage, ServerResponse } from "node:http";
import { unlink } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { InvokeRequest } from "../../services/model/index.ts";
import { loadFunction, type LogSink, type PodSpec } from "./function.ts";

// An ES import of node:http builds its whole namespace, which loads undici for the WebSocket
// getters (~25 ms of every cold start); the CommonJS module object does not.
const { createServer } = process.getBuiltinModule("node:http");

/** Request header naming the tag under which an invocation's log lines go to the log sink. */
export const LOG_TAG_HEADER = "x-kumo-log-tag";

/** Exit status of an instance that ended itself after a timeout replaced it. */
export const REPLACED_EXIT_CODE = 75;

/** Largest InvokeRequest body accepted. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
// Idle keep-alive connections from the gateway stay open this long; clients read it from the
// Keep-Alive header and drop sockets before the server does.
const KEEP_ALIVE_MS = 300_000;

/** Where and what the pod server serves. */
export interface PodServerOptions {
  spec: PodSpec;
  /** Listen on this unix socket path (preferred for a local worker); otherwise on host:port. */
  socketPath?: string;
  /** TCP port; 0 picks a free one. */
  port?: number;
  host?: string;
  /** Also receives every log line of invocations that name a tag in the LOG_TAG_HEADER header (a local worker's host). */
  logSink?: LogSink;
  /** Called once after a timeout replaced the instance and the in-flight requests were answered: the process should end. */
  onReplaced?: () => void;
}

/** A running pod server. */
export interface PodServer {
  /** The TCP port, or undefined on a unix socket. */
  readonly port: number | undefined;
  readonly socketPath: string | undefined;
  /** The line the entrypoint prints once it serves: `{"ready":true,"port":N}` or `{"ready":true,"socket":"..."}`. */
  readonly readyLine: string;
  close(): Promise<void>;
}

function isInvokeRequest(v: unknown): v is InvokeRequest {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Partial<InvokeRequest>;
  return (
    typeof r.requestId === "string" &&
    (r.kind === "http" || r.kind === "event") &&
    typeof r.input === "object" &&
    r.input !== null &&
    typeof r.deadline === "number"
  );
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, JSON.stringify({ error: { code, message, details: [] } }));
}

/** Loads the revision and serves it; rejects with KUMO_E_LOAD_FAILED when the bundle does not load. */
export async function startPodServer(options: PodServerOptions): Promise<PodServer> {
  const fn = await loadFunction(options.spec, options.logSink === undefined ? {} : { logSink: options.logSink });
  let active = 0;
  let replacedNotified = false;

  const settle = (): void => {
    active--;
    if (fn.replaced && active === 0 && !replacedNotified) {
      replacedNotified = true;
      options.onReplaced?.();
    }
  };

  const handleInvoke = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on("end", () => {
      if (tooLarge) {
        sendError(res, 413, "KUMO_E_BODY_TOO_LARGE", `the invoke request is larger than ${MAX_BODY_BYTES} bytes`);
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (err) {
        sendError(res, 400, "KUMO_E_MALFORMED_JSON", `the invoke request is not JSON: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      if (!isInvokeRequest(parsed)) {
        sendError(res, 400, "KUMO_E_VALIDATION", "the invoke request must be { requestId, kind: \"http\" | \"event\", input, deadline }");
        return;
      }
      active++;
      const tag = req.headers[LOG_TAG_HEADER];
      void fn.invoke(parsed, typeof tag === "string" ? tag : undefined).then((result) => {
        res.on("finish", settle);
        res.on("close", () => {
          if (!res.writableFinished) settle();
        });
        sendJson(res, 200, JSON.stringify(result));
      });
    });
  };

  const server = createServer((req, res) => {
    if (req.url === "/invoke" && req.method === "POST") handleInvoke(req, res);
    else if (req.url === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      if (fn.replaced) sendError(res, 503, "KUMO_E_UNAVAILABLE", "the instance was replaced after a timeout");
      else sendJson(res, 200, '{"status":"ok"}');
    } else sendError(res, 404, "KUMO_E_NOT_FOUND", `no route ${req.method ?? ""} ${req.url ?? ""}: the pod serves POST /invoke and GET /healthz`);
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;

  if (options.socketPath !== undefined) {
    // A socket file left by an instance that was killed would make listen fail with EADDRINUSE.
    await unlink(options.socketPath).catch(() => undefined);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (options.socketPath !== undefined) server.listen(options.socketPath, resolve);
    else server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });

  const port = options.socketPath === undefined ? (server.address() as AddressInfo).port : undefined;
  const readyLine = port === undefined ? JSON.stringify({ ready: true, socket: options.socketPath }) : JSON.stringify({ ready: true, port });
  return {
    port,
    socketPath: options.socketPath,
    readyLine,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
