// The Kumo REST api as an express app: health, readiness, metrics, bearer-token auth, and the
// kumo.dev/v1 resource routes. Every error leaves as `{ error: { code, message, details } }`
// with the catalogue status, whatever part of the stack raised it.

import { createHash, timingSafeEqual } from "node:crypto";
import express from "express";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { KumoError, toKumoError } from "../model/index.ts";
import type { DeadLetter } from "../model/index.ts";
import type { BlobStore, InvocationLog, Store } from "../store/index.ts";
import { API_ROOT } from "./paths.ts";
import { resourceRouter } from "./resources.ts";
import { formatLimit, methodNotAllowed } from "./http.ts";

/** One readiness check: whether it passes and a sentence saying why. */
export interface ReadyCheck {
  ok: boolean;
  message: string;
}

/** What `/readyz` reports. */
export interface ReadyReport {
  ready: boolean;
  checks: Record<string, ReadyCheck>;
}

/** A dead letter with the id `kumo events replay` takes. */
export interface DeadLetterItem {
  id: string;
  letter: DeadLetter;
}

/** The dead-letter topic as the api reads and replays it (the dispatcher provides it). */
export interface DeadLetterAccess {
  /** Dead letters of the namespace's triggers, oldest first: the newest `limit`, optionally of one trigger. */
  list(namespace: string, options: { limit?: number; trigger?: string }): Promise<DeadLetterItem[]>;
  /** Republishes the letters with these ids, or every letter (of one trigger); says how many. */
  replay(namespace: string, ids: string[] | { trigger?: string }): Promise<{ replayed: number }>;
}

/** How one revision of a function is being served right now. */
export interface RevisionServing {
  revision: string;
  /** Instances able to take requests. */
  instances: number;
  /** Instances still starting. */
  starting: number;
  /** Requests being handled. */
  inflight: number;
  /** Requests waiting for a free instance. */
  queued: number;
  /** Instances the autoscaler wants. */
  desired: number;
}

/** What the api needs from the rest of the server. */
export interface ApiDeps {
  store: Store;
  blobs: BlobStore;
  invocations: InvocationLog;
  /** Prometheus exposition (a prom-client Registry fits). */
  metrics: { contentType: string; metrics(): Promise<string> };
  /** When set, every path except /healthz and /readyz requires `Authorization: Bearer <token>`. */
  token?: string;
  ready: () => ReadyReport;
  /** The URL a function is served at, for status.url. */
  gatewayUrl: (namespace: string, fn: string) => string;
  /** Largest JSON body accepted, bytes (default 1 MiB). */
  maxJsonBytes?: number;
  /** Largest source archive accepted, bytes (default 50 MiB). */
  maxSourceBytes?: number;
  /** Aborted when the server shuts down: ends open follow streams. */
  signal?: AbortSignal;
  /** Dead letters; when absent the dead-letter routes answer 503 (eventing is not enabled). */
  deadLetters?: DeadLetterAccess;
  /** Instances per revision of a function; when absent `…/serving` answers an empty list. */
  serving?: (namespace: string, fn: string) => RevisionServing[];
  /** Where unexpected (500) errors are reported (default console.error). */
  logError?: (message: string, err: unknown) => void;
}

/** Builds the REST api. Mount it on a node:http server, or let the server route to it. */
export function createApiApp(deps: ApiDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.all("/healthz", methodNotAllowed(["GET"]));
  app.get("/readyz", (_req, res) => {
    const report = deps.ready();
    res.status(report.ready ? 200 : 503).json({ ready: report.ready, checks: report.checks });
  });
  app.all("/readyz", methodNotAllowed(["GET"]));

  if (deps.token !== undefined && deps.token !== "") app.use(bearerAuth(deps.token));

  app.get("/metrics", async (_req, res) => {
    const text = await deps.metrics.metrics();
    res.type(deps.metrics.contentType).send(text);
  });
  app.all("/metrics", methodNotAllowed(["GET"]));

  app.use(API_ROOT, resourceRouter(deps));

  app.use((req, _res, next) => {
    next(new KumoError("KUMO_E_NOT_FOUND", `no such api path: ${req.method} ${req.path}; resources live under ${API_ROOT}/namespaces/{namespace}/…`));
  });
  app.use(errorHandler(deps));
  return app;
}

function bearerAuth(token: string): RequestHandler {
  // Hashing both sides gives equal-length buffers, so timingSafeEqual never throws and the
  // comparison time does not depend on where the strings differ.
  const expected = createHash("sha256").update(token).digest();
  return (req, _res, next) => {
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header);
    if (match === null) {
      next(new KumoError("KUMO_E_UNAUTHORIZED", "this Kumo server requires an api token: pass --token or set KUMO_API_TOKEN (sent as \"Authorization: Bearer <token>\")"));
      return;
    }
    const given = createHash("sha256").update(match[1]!.trim()).digest();
    if (!timingSafeEqual(expected, given)) {
      next(new KumoError("KUMO_E_UNAUTHORIZED", "the api token was not accepted: check --token or KUMO_API_TOKEN"));
      return;
    }
    next();
  };
}

/** Maps body-parser's errors (they carry a `type`) to catalogue errors. */
function bodyParserError(err: unknown): KumoError | undefined {
  if (typeof err !== "object" || err === null || !("type" in err) || typeof err.type !== "string") return undefined;
  const e = err as { type: string; message?: unknown; limit?: unknown; length?: unknown; charset?: unknown; encoding?: unknown };
  switch (e.type) {
    case "entity.parse.failed":
      return new KumoError("KUMO_E_MALFORMED_JSON", `request body is not valid JSON: ${String(e.message)}`, { cause: err });
    case "entity.too.large": {
      const limit = typeof e.limit === "number" ? formatLimit(e.limit) : "size";
      const size = typeof e.length === "number" ? ` (${formatLimit(e.length)})` : "";
      return new KumoError("KUMO_E_BODY_TOO_LARGE", `request body${size} is larger than the ${limit} limit of this endpoint`, { cause: err });
    }
    case "charset.unsupported":
      return new KumoError("KUMO_E_UNSUPPORTED_MEDIA_TYPE", `charset "${String(e.charset)}" is not supported: send UTF-8`, { cause: err });
    case "encoding.unsupported":
      return new KumoError("KUMO_E_UNSUPPORTED_MEDIA_TYPE", `content encoding "${String(e.encoding)}" is not supported: send the body uncompressed (identity)`, { cause: err });
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
    case "stream.not.readable":
      return new KumoError("KUMO_E_VALIDATION", `request body could not be read: ${String(e.message)}`, { cause: err });
    default:
      return undefined;
  }
}

function errorHandler(deps: ApiDeps): (err: unknown, req: Request, res: Response, next: NextFunction) => void {
  const logError = deps.logError ?? ((message: string, err: unknown) => console.error(message, err));
  return (err, req, res, _next) => {
    const kumo = bodyParserError(err) ?? toKumoError(err);
    if (kumo.status >= 500) logError(`kumo api: ${req.method} ${req.originalUrl} failed: ${kumo.message}`, err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(kumo.status).json(kumo.toBody());
  };
}
