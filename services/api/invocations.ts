// Invocation records over the api: the newest N, a page after a sequence number, or
// (`?follow=true`) a newline-delimited JSON stream of records as they are written, until the
// client goes away or the server shuts down.

import type { Request, RequestHandler, Response } from "express";
import { API_VERSION, toKumoError } from "../model/index.ts";
import type { InvocationEntry, InvocationLog } from "../store/index.ts";
import type { ApiDeps } from "./app.ts";
import { notFound, pathParam, queryInt, queryParam } from "./http.ts";
import { assertNamespace } from "./paths.ts";

/** Largest page a client may ask for. */
export const maxInvocationPage = 1000;
const defaultPage = 100;

/** GET …/functions/:name/invocations[?after=<seq>][&limit=N][&follow=true] */
export function invocationsHandler(deps: ApiDeps): RequestHandler {
  return async (req, res) => {
    const namespace = pathParam(req, "ns");
    assertNamespace(namespace);
    const fn = pathParam(req, "name");
    if ((await deps.store.get("Function", namespace, fn)) === undefined) throw notFound("Function", namespace, fn);
    const after = queryInt(req, "after", 0, Number.MAX_SAFE_INTEGER);
    const limit = queryInt(req, "limit", 1, maxInvocationPage) ?? defaultPage;
    const follow = ["true", "1"].includes(queryParam(req, "follow") ?? "");
    // Without `after` the log answers with the newest `limit` records; with it, the first after it.
    const page = (): Promise<InvocationEntry[]> =>
      deps.invocations.query(after === undefined ? { namespace, function: fn, limit } : { namespace, function: fn, afterSeq: after, limit });
    if (!follow) {
      res.json({ apiVersion: API_VERSION, kind: "InvocationList", items: await page() });
      return;
    }
    await stream(deps, req, res, { namespace, fn, page, after: after ?? 0 });
  };
}

async function stream(
  deps: ApiDeps,
  req: Request,
  res: Response,
  q: { namespace: string; fn: string; page: () => Promise<InvocationEntry[]>; after: number },
): Promise<void> {
  const stop = new AbortController();
  const onStop = (): void => stop.abort();
  res.on("close", onStop);
  deps.signal?.addEventListener("abort", onStop, { once: true });
  const live = new LiveEntries(deps.invocations, q.namespace, q.fn, stop.signal);
  res.status(200);
  res.setHeader("Content-Type", "application/x-ndjson; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.flushHeaders();
  let cursor = q.after;
  const send = (entries: readonly InvocationEntry[]): void => {
    for (const entry of entries) {
      // A record written between subscribing and the first query arrives by both ways.
      if (entry.seq <= cursor) continue;
      res.write(`${JSON.stringify(entry)}\n`);
      cursor = entry.seq;
    }
  };
  try {
    send(await q.page());
    while (!stop.signal.aborted) send(await live.next());
  } catch (err) {
    // Headers are gone, so the error travels as the stream's last line.
    const kumo = toKumoError(err);
    (deps.logError ?? console.error)(`kumo api: ${req.method} ${req.originalUrl} failed: ${kumo.message}`, err);
    if (!res.destroyed) res.write(`${JSON.stringify(kumo.toBody())}\n`);
  } finally {
    live.close();
    deps.signal?.removeEventListener("abort", onStop);
    if (!res.writableEnded) res.end();
  }
}

/** Entries the log announces for one function, buffered until the stream takes them. */
class LiveEntries {
  private buffered: InvocationEntry[] = [];
  private wake: (() => void) | undefined;
  private readonly unsubscribe: () => void;
  private readonly signal: AbortSignal;
  private readonly onAbort = (): void => this.wake?.();

  constructor(log: InvocationLog, namespace: string, fn: string, signal: AbortSignal) {
    this.signal = signal;
    // Subscribed before the first query, so no record falls between the two.
    this.unsubscribe = log.subscribe(namespace, fn, (entries) => {
      this.buffered.push(...entries);
      this.wake?.();
    });
    signal.addEventListener("abort", this.onAbort);
  }

  /** Waits for entries (or the stop signal, then returns none). */
  async next(): Promise<InvocationEntry[]> {
    while (this.buffered.length === 0 && !this.signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    const out = this.buffered;
    this.buffered = [];
    return out;
  }

  close(): void {
    this.unsubscribe();
    this.signal.removeEventListener("abort", this.onAbort);
    this.wake?.();
  }
}
