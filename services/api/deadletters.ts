// Dead letters over the api: list a namespace's dead letters and replay one, or all of them
// (of one trigger). The dispatcher does the work behind `ApiDeps.deadLetters`; without it
// eventing is off and these routes answer 503.

import type { Request, RequestHandler, Response } from "express";
import { API_VERSION, dnsLabelProblem, KumoError } from "../model/index.ts";
import type { ApiDeps, DeadLetterAccess } from "./app.ts";
import { pathParam, queryInt, queryParam } from "./http.ts";
import { assertNamespace } from "./paths.ts";

/** Largest page of dead letters a client may ask for. */
export const maxDeadLetterPage = 1000;
/** Dead letters listed when the client names no limit. */
export const defaultDeadLetterPage = 100;

function access(deps: ApiDeps): DeadLetterAccess {
  if (deps.deadLetters === undefined) throw new KumoError("KUMO_E_UNAVAILABLE", "eventing is not enabled on this server: dead letters cannot be listed or replayed");
  return deps.deadLetters;
}

function namespaceOf(req: Request): string {
  const ns = pathParam(req, "ns");
  assertNamespace(ns);
  return ns;
}

function triggerName(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  const problem = typeof value === "string" ? dnsLabelProblem(value, "trigger name") : `must be a trigger name, got ${JSON.stringify(value)}`;
  if (problem !== undefined) throw new KumoError("KUMO_E_VALIDATION", `${field}: ${problem}`, { details: [{ field, message: problem }] });
  return value as string;
}

/** GET …/namespaces/:ns/deadletters[?limit=N][&trigger=<name>] */
export const listDeadLettersHandler = (deps: ApiDeps): RequestHandler => async (req: Request, res: Response) => {
  const ns = namespaceOf(req);
  const limit = queryInt(req, "limit", 1, maxDeadLetterPage) ?? defaultDeadLetterPage;
  const trigger = triggerName(queryParam(req, "trigger"), "trigger");
  const items = await access(deps).list(ns, trigger === undefined ? { limit } : { limit, trigger });
  res.json({ apiVersion: API_VERSION, kind: "DeadLetterList", items });
};

/** POST …/namespaces/:ns/deadletters/:id/replay */
export const replayDeadLetterHandler = (deps: ApiDeps): RequestHandler => async (req: Request, res: Response) => {
  const ns = namespaceOf(req);
  const id = pathParam(req, "id");
  res.json(await access(deps).replay(ns, [id]));
};

/** POST …/namespaces/:ns/deadletters/replay with `{ "trigger"?: "<name>" }` (or no body): replays all. */
export const replayAllDeadLettersHandler = (deps: ApiDeps): RequestHandler => async (req: Request, res: Response) => {
  const ns = namespaceOf(req);
  const body: unknown = req.body ?? {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new KumoError("KUMO_E_VALIDATION", 'the body must be a JSON object: {} for every dead letter, or { "trigger": "<name>" } for one trigger\'s');
  }
  const unknown = Object.keys(body).filter((k) => k !== "trigger");
  if (unknown.length > 0) {
    const message = `unknown field "${unknown[0]}": the only field is "trigger"`;
    throw new KumoError("KUMO_E_VALIDATION", message, { details: [{ field: unknown[0]!, message }] });
  }
  const trigger = triggerName((body as { trigger?: unknown }).trigger, "trigger");
  res.json(await access(deps).replay(ns, trigger === undefined ? {} : { trigger }));
};
