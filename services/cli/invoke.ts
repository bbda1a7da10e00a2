// `kumo invoke <fn>`: sends one HTTP request to a function through the gateway and prints the
// response body; exits 1 when the function answers with an error status.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { isErrorBody } from "../model/index.ts";
import type { InvokeRequest } from "../api/index.ts";
import { booleanFlag, listFlag, parsePair, stringFlag, UsageError } from "./args.ts";
import type { Values } from "./args.ts";
import type { Command, CommandContext } from "./command.ts";
import { renderError } from "./output.ts";
import { KumoApiError } from "../api/index.ts";

/** `kumo invoke <fn> [flags]` */
export const invokeCommand: Command = {
  name: "invoke",
  summary: "Call a function over HTTP and print its response",
  description:
    "Sends a request to <server>/<namespace>/<fn><path> and prints the response body (pretty JSON on a terminal). " +
    "With --data the method defaults to POST and the body is sent as application/json when it parses as JSON, else as text/plain. " +
    "Exits 1 when the response status is 400 or more.",
  args: [{ name: "fn", required: true }],
  flags: {
    data: { type: "string", short: "d", value: "<json|text|@file>", help: "request body; @path reads a file" },
    method: { type: "string", short: "X", value: "<method>", help: "HTTP method (default POST with --data, else GET)" },
    path: { type: "string", value: "</sub/path>", help: "path after the function's URL" },
    header: { type: "string", short: "H", multiple: true, value: "<Name:value>", help: "request header" },
    query: { type: "string", short: "q", multiple: true, value: "<k=v>", help: "query parameter" },
    verbose: { type: "boolean", short: "v", help: "print the HTTP status and invocation id to stderr" },
  },
  examples: [
    "kumo invoke hello",
    "kumo invoke hello --data '{\"name\":\"Kumo\"}'",
    "kumo invoke hello --data @event.json --header X-Request-Id:abc -v",
    "kumo invoke hello --method GET --path /users/42 --query verbose=1",
  ],
  run: runInvoke,
};

/** Builds the request from the flags (reading --data @file relative to cwd). */
export async function invokeRequest(values: Values, cwd: string): Promise<InvokeRequest> {
  const req: InvokeRequest = {};
  const headers: Record<string, string> = {};
  for (const raw of listFlag(values, "header")) {
    const [k, v] = parsePair(raw, "header", ":", "invoke");
    headers[k.toLowerCase()] = v;
  }
  const query = listFlag(values, "query").map((raw) => parsePair(raw, "query", "=", "invoke"));
  if (query.length > 0) req.query = query;
  const data = stringFlag(values, "data");
  if (data !== undefined) {
    let body: string;
    if (data.startsWith("@")) {
      const file = path.resolve(cwd, data.slice(1));
      try {
        body = await readFile(file, "utf8");
      } catch (err) {
        throw new UsageError(`--data ${data}: cannot read ${file}: ${(err as Error).message}`, "invoke");
      }
    } else body = data;
    req.body = body;
    headers["content-type"] ??= looksLikeJson(body) ? "application/json" : "text/plain; charset=utf-8";
  }
  req.headers = headers;
  const method = stringFlag(values, "method");
  if (method !== undefined) {
    if (!/^[A-Za-z]+$/.test(method)) throw new UsageError(`--method "${method}" is not an HTTP method such as GET or POST`, "invoke");
    req.method = method.toUpperCase();
  }
  const sub = stringFlag(values, "path");
  if (sub !== undefined) req.path = sub.startsWith("/") ? sub : `/${sub}`;
  return req;
}

function looksLikeJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

async function runInvoke(ctx: CommandContext, values: Values, positionals: readonly string[]): Promise<number> {
  const fn = positionals[0]!;
  const req = await invokeRequest(values, ctx.cwd);
  const res = await ctx.client.invoke(ctx.namespace, fn, req);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (booleanFlag(values, "verbose", false)) {
    const id = res.headers.get("x-kumo-invocation-id");
    ctx.stderr.write(`HTTP ${res.status}${res.statusText === "" ? "" : ` ${res.statusText}`}\n${id === null ? "" : `invocation: ${id}\n`}`);
  }
  const isJson = /^application\/([\w.+-]*\+)?json\b/i.test(res.headers.get("content-type") ?? "");
  let parsed: unknown;
  if (isJson) {
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      parsed = undefined;
    }
  }
  if (res.status >= 400 && isErrorBody(parsed)) {
    // The platform (or the function via the runtime) answered with a Kumo error: show it as one.
    const e = parsed.error;
    ctx.stderr.write(renderError(new KumoApiError(res.status, e.code, e.message, e.details ?? []), ctx.env.KUMO_DEBUG === "1"));
    return 1;
  }
  if (parsed !== undefined && ctx.stdout.isTTY === true) ctx.stdout.write(`${JSON.stringify(parsed, null, 2)}\n`);
  else if (bytes.byteLength > 0) {
    ctx.stdout.write(bytes);
    if (ctx.stdout.isTTY === true && bytes[bytes.byteLength - 1] !== 0x0a) ctx.stdout.write("\n");
  }
  if (res.status >= 400) {
    ctx.stderr.write(`error: function "${fn}" answered HTTP ${res.status}${res.statusText === "" ? "" : ` ${res.statusText}`}\n`);
    return 1;
  }
  return 0;
}
