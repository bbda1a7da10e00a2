// The kumo.dev/v1 resource routes: functions, revisions, triggers and source uploads. The api
// validates and stores desired state only; the controller does the rest by watching the Store.

import express from "express";
import type { Request, RequestHandler, Response } from "express";
import { API_VERSION, KumoError, validateFunctionInput, validateTriggerInput } from "../model/index.ts";
import type { Kind, KumoFunction, MetadataInput, ResourceOf, Revision, Trigger } from "../model/index.ts";
import type { ApiDeps } from "./app.ts";
import { listDeadLettersHandler, replayAllDeadLettersHandler, replayDeadLetterHandler } from "./deadletters.ts";
import { defaultMaxJsonBytes, defaultMaxSourceBytes, jsonBody, methodNotAllowed, notFound, optionalJsonBody, pathParam, queryParam, rawBody } from "./http.ts";
import { invocationsHandler } from "./invocations.ts";
import { assertNamespace, itemPath } from "./paths.ts";

const NS = "/namespaces/:ns";

/** Routes mounted at /apis/kumo.dev/v1. */
export function resourceRouter(deps: ApiDeps): express.Router {
  const router = express.Router();
  const json = jsonBody(deps.maxJsonBytes ?? defaultMaxJsonBytes);
  const raw = rawBody(deps.maxSourceBytes ?? defaultMaxSourceBytes);
  const r = new ResourceRoutes(deps);

  const route = (path: string, handlers: Partial<Record<"get" | "post" | "put" | "delete", RequestHandler[]>>): void => {
    const rt = router.route(path);
    const allowed: string[] = [];
    if (handlers.get !== undefined) {
      rt.get(...handlers.get);
      allowed.push("GET");
    }
    if (handlers.post !== undefined) {
      rt.post(...handlers.post);
      allowed.push("POST");
    }
    if (handlers.put !== undefined) {
      rt.put(...handlers.put);
      allowed.push("PUT");
    }
    if (handlers.delete !== undefined) {
      rt.delete(...handlers.delete);
      allowed.push("DELETE");
    }
    rt.all(methodNotAllowed(allowed));
  };

  route("/functions", { get: [r.listAll("Function")] });
  route("/revisions", { get: [r.listAll("Revision")] });
  route("/triggers", { get: [r.listAll("Trigger")] });

  route(`${NS}/functions`, { get: [r.listFunctions], post: [...json, r.createFunction] });
  route(`${NS}/functions/:name`, { get: [r.getFunction], put: [...json, r.replaceFunction], delete: [r.deleteFunction] });
  route(`${NS}/functions/:name/invocations`, { get: [invocationsHandler(deps)] });
  route(`${NS}/functions/:name/serving`, { get: [r.getServing] });
  route(`${NS}/revisions`, { get: [r.listRevisions] });
  route(`${NS}/revisions/:name`, { get: [r.getRevision] });
  route(`${NS}/triggers`, { get: [r.listTriggers], post: [...json, r.createTrigger] });
  route(`${NS}/triggers/:name`, { get: [r.getTrigger], put: [...json, r.replaceTrigger], delete: [r.deleteTrigger] });
  route(`${NS}/sources`, { post: [...raw, r.uploadSource] });
  route(`${NS}/deadletters`, { get: [listDeadLettersHandler(deps)] });
  route(`${NS}/deadletters/replay`, { post: [...optionalJsonBody(deps.maxJsonBytes ?? defaultMaxJsonBytes), replayAllDeadLettersHandler(deps)] });
  route(`${NS}/deadletters/:id/replay`, { post: [replayDeadLetterHandler(deps)] });
  return router;
}

/** The namespace in the path, checked. */
export function namespaceOf(req: Request): string {
  const ns = pathParam(req, "ns");
  assertNamespace(ns);
  return ns;
}

function list<K extends Kind>(kind: K, items: ResourceOf<K>[]): { apiVersion: string; kind: string; items: ResourceOf<K>[] } {
  return { apiVersion: API_VERSION, kind: `${kind}List`, items };
}

function metadataFor(m: MetadataInput): { name: string; namespace: string; labels?: Record<string, string> } {
  return m.labels === undefined ? { name: m.name, namespace: m.namespace } : { name: m.name, namespace: m.namespace, labels: m.labels };
}

/** The resourceVersion a client sent in metadata, if any. */
function sentResourceVersion(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const metadata = (body as { metadata?: unknown }).metadata;
  if (typeof metadata !== "object" || metadata === null) return undefined;
  const rv = (metadata as { resourceVersion?: unknown }).resourceVersion;
  return typeof rv === "string" && rv !== "" ? rv : undefined;
}

function assertPathName(bodyName: string, pathName: string, what: string): void {
  if (bodyName !== pathName) {
    const message = `is "${bodyName}" but the request path names ${what} "${pathName}": they must match`;
    throw new KumoError("KUMO_E_VALIDATION", `invalid ${what}: metadata.name: ${message}`, { details: [{ field: "metadata.name", message }] });
  }
}

/** True when `err` is a KumoError saying something does not exist (a cascade delete lost a race). */
function isNotFound(err: unknown): boolean {
  return err instanceof KumoError && err.status === 404;
}

class ResourceRoutes {
  private readonly deps: ApiDeps;

  constructor(deps: ApiDeps) {
    this.deps = deps;
  }

  /** A function as the api shows it: status.url filled in. */
  private present(fn: KumoFunction): KumoFunction {
    if (fn.status.url !== undefined) return fn;
    return { ...fn, status: { ...fn.status, url: this.deps.gatewayUrl(fn.metadata.namespace, fn.metadata.name) } };
  }

  private async mustGet<K extends Kind>(kind: K, namespace: string, name: string): Promise<ResourceOf<K>> {
    const obj = await this.deps.store.get(kind, namespace, name);
    if (obj === undefined) throw notFound(kind, namespace, name);
    return obj;
  }

  private async assertSourceUploaded(digest: string): Promise<void> {
    if (await this.deps.blobs.has(digest)) return;
    const message = `source ${digest} was never uploaded: upload the source first (POST …/sources, which \`kumo deploy\` does) and use the digest it returns`;
    throw new KumoError("KUMO_E_SOURCE_NOT_FOUND", message, { details: [{ field: "spec.source.digest", message }] });
  }

  listAll(kind: Kind): RequestHandler {
    return async (_req, res) => {
      const items = await this.deps.store.list(kind);
      res.json(list(kind, kind === "Function" ? (items as KumoFunction[]).map((f) => this.present(f)) : items));
    };
  }

  readonly listFunctions = async (req: Request, res: Response): Promise<void> => {
    const items = await this.deps.store.list("Function", namespaceOf(req));
    res.json(list("Function", items.map((f) => this.present(f))));
  };

  readonly createFunction = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const { metadata, spec } = validateFunctionInput(req.body, ns);
    await this.assertSourceUploaded(spec.source.digest);
    const created = await this.deps.store.create("Function", { apiVersion: API_VERSION, kind: "Function", metadata: metadataFor(metadata), spec, status: {} });
    res.status(201).location(itemPath(ns, "functions", created.metadata.name)).json(this.present(created));
  };

  readonly getFunction = async (req: Request, res: Response): Promise<void> => {
    const fn = await this.mustGet("Function", namespaceOf(req), pathParam(req, "name"));
    res.json(this.present(fn));
  };

  readonly replaceFunction = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const name = pathParam(req, "name");
    const { metadata, spec } = validateFunctionInput(req.body, ns);
    assertPathName(metadata.name, name, "function");
    const current = await this.mustGet("Function", ns, name);
    await this.assertSourceUploaded(spec.source.digest);
    const next: KumoFunction = {
      ...current,
      metadata: { ...withoutLabels(current.metadata), ...labelsOf(metadata), resourceVersion: sentResourceVersion(req.body) ?? current.metadata.resourceVersion },
      spec,
    };
    res.json(this.present(await this.deps.store.update("Function", next)));
  };

  readonly getServing = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const name = pathParam(req, "name");
    await this.mustGet("Function", ns, name);
    res.json({ apiVersion: API_VERSION, kind: "ServingList", items: this.deps.serving?.(ns, name) ?? [] });
  };

  readonly deleteFunction = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const name = pathParam(req, "name");
    await this.mustGet("Function", ns, name);
    const deleted = await this.deps.store.delete("Function", ns, name, queryParam(req, "resourceVersion"));
    // A function owns its revisions and triggers; they go with it.
    const revisions = (await this.deps.store.list("Revision", ns)).filter((r) => r.spec.functionName === name || r.metadata.ownerName === name);
    const triggers = (await this.deps.store.list("Trigger", ns)).filter((t) => t.spec.function === name);
    for (const r of revisions) await this.deps.store.delete("Revision", ns, r.metadata.name).catch(ignoreNotFound);
    for (const t of triggers) await this.deps.store.delete("Trigger", ns, t.metadata.name).catch(ignoreNotFound);
    res.json(this.present(deleted));
  };

  readonly listRevisions = async (req: Request, res: Response): Promise<void> => {
    const fn = queryParam(req, "function");
    const items = await this.deps.store.list("Revision", namespaceOf(req));
    res.json(list("Revision", fn === undefined ? items : items.filter((r: Revision) => r.spec.functionName === fn)));
  };

  readonly getRevision = async (req: Request, res: Response): Promise<void> => {
    res.json(await this.mustGet("Revision", namespaceOf(req), pathParam(req, "name")));
  };

  readonly listTriggers = async (req: Request, res: Response): Promise<void> => {
    const fn = queryParam(req, "function");
    const items = await this.deps.store.list("Trigger", namespaceOf(req));
    res.json(list("Trigger", fn === undefined ? items : items.filter((t: Trigger) => t.spec.function === fn)));
  };

  readonly createTrigger = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const { metadata, spec } = validateTriggerInput(req.body, ns);
    await this.mustGet("Function", ns, spec.function);
    const created = await this.deps.store.create("Trigger", { apiVersion: API_VERSION, kind: "Trigger", metadata: metadataFor(metadata), spec, status: {} });
    res.status(201).location(itemPath(ns, "triggers", created.metadata.name)).json(created);
  };

  readonly getTrigger = async (req: Request, res: Response): Promise<void> => {
    res.json(await this.mustGet("Trigger", namespaceOf(req), pathParam(req, "name")));
  };

  readonly replaceTrigger = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const name = pathParam(req, "name");
    const { metadata, spec } = validateTriggerInput(req.body, ns);
    assertPathName(metadata.name, name, "trigger");
    const current = await this.mustGet("Trigger", ns, name);
    await this.mustGet("Function", ns, spec.function);
    const next: Trigger = {
      ...current,
      metadata: { ...withoutLabels(current.metadata), ...labelsOf(metadata), resourceVersion: sentResourceVersion(req.body) ?? current.metadata.resourceVersion },
      spec,
    };
    res.json(await this.deps.store.update("Trigger", next));
  };

  readonly deleteTrigger = async (req: Request, res: Response): Promise<void> => {
    const ns = namespaceOf(req);
    const name = pathParam(req, "name");
    await this.mustGet("Trigger", ns, name);
    res.json(await this.deps.store.delete("Trigger", ns, name, queryParam(req, "resourceVersion")));
  };

  readonly uploadSource = async (req: Request, res: Response): Promise<void> => {
    namespaceOf(req);
    const body: unknown = req.body;
    if (!(body instanceof Uint8Array) || body.byteLength === 0) {
      throw new KumoError("KUMO_E_VALIDATION", "the source archive is empty: send the packed function folder as the request body (kumo deploy does this)");
    }
    const digest = await this.deps.blobs.put(body);
    res.status(201).json({ digest, bytes: body.byteLength });
  };
}

function withoutLabels<M extends { labels?: Record<string, string> }>(m: M): Omit<M, "labels"> {
  const { labels: _labels, ...rest } = m;
  return rest;
}

function labelsOf(m: MetadataInput): { labels?: Record<string, string> } {
  return m.labels === undefined ? {} : { labels: m.labels };
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}
