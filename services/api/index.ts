// The REST api (express) and its typed client. The server mounts createApiApp; the CLI and
// tests talk to it through KumoClient.
export { createApiApp } from "./app.ts";
export type { ApiDeps, DeadLetterAccess, DeadLetterItem, ReadyCheck, ReadyReport, RevisionServing } from "./app.ts";
export { defaultMaxJsonBytes, defaultMaxSourceBytes } from "./http.ts";
export type { InvocationEntry } from "../store/index.ts";
export { API_ROOT, reservedNamespaces, assertNamespace, collectionPath, itemPath } from "./paths.ts";
export { KumoClient, KumoApiError, KumoConnectionError } from "./client.ts";
export type { ClientOptions, FunctionManifest, InvokeRequest, PublishedEvents, ResourceList, SourceUpload, TriggerManifest } from "./client.ts";
