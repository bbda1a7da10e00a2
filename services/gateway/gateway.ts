// The gateway: the HTTP hot path. `/{namespace}/{function}[@tag]/{path}` is routed to a revision
// (traffic split), run on a warm instance with a free slot, and its response written back;
// every invocation leaves a record. It runs on node:http directly; express is for the api only.

import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { KumoError, type HttpInput, type InvocationRecord, type InvokeResult } from "../model/index.ts";
import type { InvocationLog } from "../store/index.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { RouteTable, RevisionTarget } from "./routes.ts";

/** Over-limit bodies up to this size are read and discarded so the client sees the 413. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

/** Gateway settings. */
export interface GatewayOptions {
  /** Largest request body accepted, bytes (413 above). */
  maxBodyBytes: number;
}

let lastMs = 0;
let lastIso = "1970-01-01T00:00:00.000Z";
/** ISO time of an epoch-ms instant; requests in the same millisecond share one string. */
function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** Writes an error response in the catalogue's JSON shape. */
export function writeError(res: ServerResponse, err: KumoError, extraHeaders?: Record<string, string>): void {
  const body = JSON.stringify(err.toBody());
  res.writeHead(err.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...extraHeaders });
  res.end(body);
}

/** Creates the gateway's request handler. */
export function createGateway(deps: { routes: RouteTable; invocations: InvocationLog; metrics: GatewayMetrics; options: GatewayOptions }): (req: IncomingMessage, res: ServerResponse) => void {
  const { routes, invocations, options } = deps;
  const maxBody = options.maxBodyBytes;

  function finish(target: RevisionTarget, res: ServerResponse, id: string, start: number, t0: number, result: InvokeResult, coldStart: boolean): void {
    const durationMs = performance.now() - t0;
    if (!res.headersSent) {
      const headers = result.headers;
      headers["content-length"] = String(Buffer.byteLength(result.body));
      headers["x-kumo-invocation-id"] = id;
      headers["x-kumo-revision"] = target.revision;
      res.writeHead(result.status, headers);
      res.end(result.body);
    }
    target.metrics.invocation(result.outcome, durationMs / 1000);
    const record: InvocationRecord = {
      id,
      namespace: target.namespace,
      function: target.function,
      revision: target.revision,
      start: isoTime(start),
      durationMs,
      outcome: result.outcome,
      status: result.status,
      coldStart,
      logs: result.logs,
    };
    if (result.error !== undefined) record.error = result.error;
    invocations.append(record);
  }

  function run(target: RevisionTarget, input: HttpInput, res: ServerResponse): void {
    const id = randomUUID();
    const start = Date.now();
    const t0 = performance.now();
    target.pool.invoke({ requestId: id, kind: "http", input, deadline: start + target.timeoutMs }).then(
      (inv) => finish(target, res, id, start, t0, inv.result, inv.coldStart),
      (err: unknown) => {
        const e = err instanceof KumoError ? err : new KumoError("KUMO_E_INTERNAL", `invocation failed: ${String(err)}`, { cause: err });
        const body = JSON.stringify(e.toBody());
        const outcome = e.code === "KUMO_E_LOAD_FAILED" ? "function_error" : "platform_error";
        finish(target, res, id, start, t0, { outcome, status: e.status, headers: { "content-type": "application/json" }, body, logs: [], error: e.message }, false);
      },
    );
  }

  return function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const pathEnd = q === -1 ? url.length : q;
    const nsEnd = url.indexOf("/", 1);
    if (nsEnd === -1 || nsEnd >= pathEnd) {
      writeError(res, new KumoError("KUMO_E_NOT_FOUND", `no function at ${url.slice(0, pathEnd)}: function URLs look like /{namespace}/{function}/...`));
      return;
    }
    let fnEnd = url.indexOf("/", nsEnd + 1);
    if (fnEnd === -1 || fnEnd > pathEnd) fnEnd = pathEnd;
    const key = url.slice(1, fnEnd);
    const route = routes.get(key);
    if (route === undefined) {
      writeError(res, new KumoError("KUMO_E_FUNCTION_NOT_FOUND", `no ready function at /${key}: deploy it with \`kumo deploy\`, or check \`kumo list\` / \`kumo describe\``));
      return;
    }
    const target = route.pick();
    const input: HttpInput = {
      method: req.method ?? "GET",
      path: fnEnd === pathEnd ? "/" : url.slice(fnEnd, pathEnd),
      rawQuery: q === -1 ? "" : url.slice(q + 1),
      headers: req.headers as Record<string, string>,
      body: "",
    };
    const length = req.headers["content-length"];
    if (length === undefined && req.headers["transfer-encoding"] === undefined) {
      run(target, input, res);
      return;
    }
    if (length !== undefined && Number(length) > maxBody) {
      deps.metrics.rejected.labels({ namespace: target.namespace, function: target.function, reason: "body_too_large" }).inc();
      // Drain a body of moderate size so the client reads the 413 instead of a broken pipe;
      // a huge one is cut off with the connection.
      const drain = Number(length) <= DRAIN_LIMIT;
      writeError(res, new KumoError("KUMO_E_BODY_TOO_LARGE", `request body of ${length} bytes is over the gateway's limit of ${maxBody} bytes: send less, or raise KUMO_GATEWAY_MAX_BODY_BYTES`), drain ? {} : { connection: "close" });
      if (drain) req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBody) {
        if (!tooLarge) {
          tooLarge = true;
          writeError(res, new KumoError("KUMO_E_BODY_TOO_LARGE", `request body is over the gateway's limit of ${maxBody} bytes: send less, or raise KUMO_GATEWAY_MAX_BODY_BYTES`), { connection: "close" });
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) return;
      input.body = chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8");
      run(target, input, res);
    });
    req.on("error", () => {
      // The client went away mid-body: nothing to answer.
    });
  };
}
