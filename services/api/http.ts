// Request plumbing shared by the api routes: path parameters, query integers, and the body
// parsers that enforce content type and size before a handler runs.

import express from "express";
import type { Request, RequestHandler } from "express";
import { KumoError } from "../model/index.ts";
import type { Kind } from "../model/index.ts";

/** Default JSON body limit: 1 MiB. */
export const defaultMaxJsonBytes = 1024 * 1024;
/** Default source archive limit: 50 MiB. */
export const defaultMaxSourceBytes = 50 * 1024 * 1024;

/** A handler for a path that exists but not with this method: 405 naming the allowed ones. */
export function methodNotAllowed(allowed: readonly string[]): RequestHandler {
  return (req, res, next) => {
    res.setHeader("Allow", allowed.join(", "));
    next(new KumoError("KUMO_E_METHOD_NOT_ALLOWED", `method ${req.method} is not allowed on ${fullPath(req)}: use ${allowed.join(" or ")}`));
  };
}

/** The 404 for a named resource that does not exist, with the way forward. */
export function notFound(kind: Kind, namespace: string, name: string): KumoError {
  switch (kind) {
    case "Function":
      return new KumoError("KUMO_E_FUNCTION_NOT_FOUND", `function "${name}" not found in namespace "${namespace}": deploy it with \`kumo deploy\`, or see what exists with \`kumo list -n ${namespace}\``);
    case "Revision":
      return new KumoError("KUMO_E_REVISION_NOT_FOUND", `revision "${name}" not found in namespace "${namespace}": see a function's revisions with \`kumo revisions <function>\``);
    case "Trigger":
      return new KumoError("KUMO_E_TRIGGER_NOT_FOUND", `trigger "${name}" not found in namespace "${namespace}"`);
  }
}

/** The request's path from the root, whatever router it reached (req.path is relative to the mount point). */
export function fullPath(req: Request): string {
  return `${req.baseUrl}${req.path}`;
}

/** A path parameter the route guarantees. */
export function pathParam(req: Request, name: string): string {
  const params = req.params as Record<string, string | undefined>;
  const value = params[name];
  if (value === undefined) throw new KumoError("KUMO_E_INTERNAL", `route has no :${name} parameter`);
  return value;
}

/** A single query parameter, if present. */
export function queryParam(req: Request, name: string): string | undefined {
  const v: unknown = (req.query as Record<string, unknown>)[name];
  if (typeof v === "string") return v;
  if (Array.isArray(v) && typeof v[0] === "string") return v[0];
  return undefined;
}

/** A whole-number query parameter within bounds; KUMO_E_VALIDATION otherwise. */
export function queryInt(req: Request, name: string, min: number, max: number): number | undefined {
  const raw = queryParam(req, name);
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    const message = `query parameter ${name}=${JSON.stringify(raw)} is not valid: use a whole number from ${min} to ${max}`;
    throw new KumoError("KUMO_E_VALIDATION", message, { details: [{ field: name, message }] });
  }
  return n;
}

/** A byte count as people read it: 1 MiB, 50 MiB, 512 bytes. */
export function formatLimit(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${+(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

function requireContentType(types: readonly string[]): RequestHandler {
  return (req, _res, next) => {
    if (req.is(types as string[]) === false || req.headers["content-type"] === undefined) {
      const given = req.headers["content-type"] ?? "(none)";
      next(new KumoError("KUMO_E_UNSUPPORTED_MEDIA_TYPE", `Content-Type ${given} is not accepted on ${req.method} ${fullPath(req)}: send ${types.join(" or ")}`));
      return;
    }
    next();
  };
}

/** Parses a JSON body up to `limit` bytes; 415 for other content types. */
export function jsonBody(limit: number): RequestHandler[] {
  return [requireContentType(["application/json"]), express.json({ limit, strict: false, type: "application/json" })];
}

/** Like jsonBody, but a request without a body passes through with req.body undefined. */
export function optionalJsonBody(limit: number): RequestHandler[] {
  const parse = jsonBody(limit);
  return parse.map((handler): RequestHandler => (req, res, next) => {
    const length = req.headers["content-length"];
    const hasBody = req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
    if (!hasBody) {
      next();
      return;
    }
    void handler(req, res, next);
  });
}

/** Media types a source archive may be sent as. */
export const sourceMediaTypes: readonly string[] = ["application/octet-stream", "application/gzip", "application/x-gzip"];

/** Reads a raw binary body up to `limit` bytes into req.body (a Buffer); 415 for other content types. */
export function rawBody(limit: number): RequestHandler[] {
  return [requireContentType(sourceMediaTypes), express.raw({ limit, type: [...sourceMediaTypes] })];
}
