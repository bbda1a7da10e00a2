// The instance backend contract: how the gateway and dispatcher run a revision's code, whatever
// runs it (an isolate in-process, a worker process, a pod). Implementations pass
// test/contract/executor.contract.ts.

import type { LogLine, Outcome } from "./resources.ts";

/** What an instance needs to load a revision. */
export interface LoadSpec {
  namespace: string;
  function: string;
  revision: string;
  /** The bundled code (an ES module whose default export is the handler). */
  code: string;
  /** Path of the bundle on disk, for runtimes that load files. */
  codePath?: string;
  env: Record<string, string>;
  timeoutMs: number;
  memoryMb: number;
}

/** The HTTP request as it crosses into an instance (plain data, no methods). */
export interface HttpInput {
  method: string;
  path: string;
  rawQuery: string;
  headers: Record<string, string>;
  body: string;
}

/** One invocation. `input` is an HttpInput (kind "http") or a CloudEvent object (kind "event"). */
export interface InvokeRequest {
  requestId: string;
  kind: "http" | "event";
  input: HttpInput | Record<string, unknown>;
  /** Epoch ms deadline; the instance stops the handler at it. */
  deadline: number;
}

/** How an invocation ended, with the response to send. */
export interface InvokeResult {
  outcome: Outcome;
  status: number;
  headers: Record<string, string>;
  body: string;
  logs: LogLine[];
  /** The error and its stack, for function_error / timeout / platform_error. */
  error?: string;
  /** Catalogue code for a failed invocation (KUMO_E_FUNCTION_ERROR, _TIMEOUT, _MEMORY, ...). */
  errorCode?: string;
}

/** A running instance of one revision. */
export interface Instance {
  readonly id: string;
  readonly revision: string;
  /** False once the instance died (timeout, memory, crash) and must not take more requests. */
  readonly healthy: boolean;
  invoke(req: InvokeRequest): Promise<InvokeResult>;
  dispose(): Promise<void>;
}

/** Starts instances of a revision. */
export interface InstanceBackend {
  readonly runtime: string;
  /** Loads the code and resolves when the instance can take requests; rejects with KUMO_E_LOAD_FAILED. */
  start(spec: LoadSpec): Promise<Instance>;
  close(): Promise<void>;
}
