// The REST api's paths, shared by the express app and the typed client so the two cannot drift.
// Paths are Kubernetes-style (`/apis/kumo.dev/v1/namespaces/{ns}/functions/{name}`).

import { KumoError, dnsLabelProblem } from "../model/index.ts";

/** Root of every resource path. */
export const API_ROOT = "/apis/kumo.dev/v1";

/**
 * Namespace names that cannot be used: the server serves functions at `/{ns}/{fn}`, so these
 * would collide with its own paths.
 */
export const reservedNamespaces: readonly string[] = ["apis", "healthz", "readyz", "metrics", "events"];

/** The path of a namespace's collection of a resource, e.g. `/apis/kumo.dev/v1/namespaces/default/functions`. */
export function collectionPath(namespace: string, plural: string): string {
  return `${API_ROOT}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
}

/** The path of one named resource. */
export function itemPath(namespace: string, plural: string, name: string): string {
  return `${collectionPath(namespace, plural)}/${encodeURIComponent(name)}`;
}

/** Throws KUMO_E_VALIDATION unless `namespace` is a DNS-1123 label that is not reserved. */
export function assertNamespace(namespace: string): void {
  const problem = dnsLabelProblem(namespace, "namespace");
  if (problem !== undefined) throw new KumoError("KUMO_E_VALIDATION", problem, { details: [{ field: "metadata.namespace", message: problem }] });
  if (reservedNamespaces.includes(namespace)) {
    const message = `namespace "${namespace}" is reserved (it collides with the server's /${namespace} path): pick another name; reserved are ${reservedNamespaces.join(", ")}`;
    throw new KumoError("KUMO_E_VALIDATION", message, { details: [{ field: "metadata.namespace", message }] });
  }
}
