// The worker runtime's configuration, read from the environment (KUMO_POD_*): which bundle to load,
// the revision it belongs to, and where to listen. `kumo server` sets these on its worker
// processes; a revision's Deployment sets them on its pods.

import { envInt, KumoError, Problems } from "../../services/model/index.ts";
import type { PodSpec } from "./function.ts";

/** Everything runtime/pod/main.ts needs. */
export interface PodConfig {
  readonly spec: PodSpec;
  /** KUMO_POD_SOCKET: unix socket path to listen on; when set, host and port are not used. */
  readonly socketPath: string | undefined;
  /** KUMO_POD_PORT: TCP port (0 picks a free one). Default 0; the pod image sets 8080. */
  readonly port: number;
  /** KUMO_POD_HOST: address to listen on. Default 0.0.0.0 for a fixed port (a pod), 127.0.0.1 for port 0 (a local worker). */
  readonly host: string;
  /** KUMO_POD_LOG_FD: a file descriptor that receives each log line as it is written (a local worker's host reads it). */
  readonly logFd: number | undefined;
}

/** Prefix of the runtime's own variables; they are never part of the function's env. */
export const POD_ENV_PREFIX = "KUMO_POD_";


function required(p: Problems, env: Record<string, string | undefined>, key: string, what: string): string {
  const v = env[key];
  if (v === undefined || v === "") {
    p.add(key, `is not set: it must name ${what}`);
    return "";
  }
  return v;
}

/** Reads the pod configuration. Throws KUMO_E_INVALID_CONFIG listing every problem. */
export function loadPodConfig(env: Record<string, string | undefined>): PodConfig {
  const p = new Problems();
  // KUMO_POD_CODE_PATH: the bundle (an ES module whose default export is the handler).
  const codePath = required(p, env, "KUMO_POD_CODE_PATH", "the function's bundle (an ES module file)");
  // KUMO_POD_NAMESPACE / _FUNCTION / _REVISION: what ctx tells the handler it is.
  const namespace = env.KUMO_POD_NAMESPACE === undefined || env.KUMO_POD_NAMESPACE === "" ? "default" : env.KUMO_POD_NAMESPACE;
  const fn = required(p, env, "KUMO_POD_FUNCTION", "the function");
  const revision = required(p, env, "KUMO_POD_REVISION", "the revision");
  // KUMO_POD_TIMEOUT_MS: limits.timeoutMs, the handler's deadline when a request has none sooner.
  const timeoutMs = envInt(p, env, "KUMO_POD_TIMEOUT_MS", 30_000, 1, 3_600_000);
  // KUMO_POD_MEMORY_MB: limits.memoryMb, named in memory errors (the heap cap is a node flag).
  const memoryMb = envInt(p, env, "KUMO_POD_MEMORY_MB", 128, 1, 65_536);
  // KUMO_POD_ENV_KEYS: comma-separated names of the function's env (ctx.env); unset means every
  // variable but KUMO_POD_*.
  const keys = env.KUMO_POD_ENV_KEYS;
  const names = keys === undefined ? Object.keys(env).filter((k) => !k.startsWith(POD_ENV_PREFIX)) : keys.split(",").filter((k) => k !== "");
  const fnEnv: Record<string, string> = {};
  for (const k of names) {
    const v = env[k];
    if (v !== undefined) fnEnv[k] = v;
  }
  const socketPath = env.KUMO_POD_SOCKET === undefined || env.KUMO_POD_SOCKET === "" ? undefined : env.KUMO_POD_SOCKET;
  const port = envInt(p, env, "KUMO_POD_PORT", 0, 0, 65535);
  const host = env.KUMO_POD_HOST === undefined || env.KUMO_POD_HOST === "" ? (port === 0 ? "127.0.0.1" : "0.0.0.0") : env.KUMO_POD_HOST;
  const logFd = env.KUMO_POD_LOG_FD === undefined || env.KUMO_POD_LOG_FD === "" ? undefined : envInt(p, env, "KUMO_POD_LOG_FD", 3, 3, 1023);
  if (p.list.length > 0) {
    throw new KumoError("KUMO_E_INVALID_CONFIG", `invalid pod configuration: ${p.list.map((d) => `${d.field}: ${d.message}`).join("; ")}`, { details: p.list });
  }
  const spec: PodSpec = { namespace, function: fn, revision, codePath, env: fnEnv, timeoutMs, memoryMb };
  return Object.freeze({ spec: Object.freeze(spec), socketPath, port, host, logFd });
}
