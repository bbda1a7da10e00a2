// The resource Store: what the api writes and the controller watches. One interface, an
// embedded SQLite implementation here and a Kubernetes one for clusters; both pass
// test/contract/store.contract.ts.

import type { InvocationRecord, Kind, ResourceOf } from "../model/index.ts";

/** A resource as written by a client: the store fills uid, resourceVersion, generation, creationTimestamp. */
export type NewResource<K extends Kind> = Omit<ResourceOf<K>, "metadata"> & {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; ownerName?: string };
};

/** A change seen by a watcher. */
export interface WatchEvent<K extends Kind = Kind> {
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: ResourceOf<K>;
}

/** Stops a watch. */
export interface Watch<K extends Kind = Kind> extends AsyncIterable<WatchEvent<K>> {
  close(): void;
}

/** Create/get/list/update/delete with optimistic concurrency, and a watch stream. */
export interface Store {
  /** Creates; KUMO_E_ALREADY_EXISTS if the name is taken. */
  create<K extends Kind>(kind: K, obj: NewResource<K>): Promise<ResourceOf<K>>;
  get<K extends Kind>(kind: K, namespace: string, name: string): Promise<ResourceOf<K> | undefined>;
  /** Lists by name order; all namespaces when namespace is undefined. */
  list<K extends Kind>(kind: K, namespace?: string): Promise<ResourceOf<K>[]>;
  /**
   * Replaces spec (and labels) when metadata.resourceVersion matches the stored one, else
   * KUMO_E_CONFLICT; bumps generation when the spec changed. Status is left as stored.
   */
  update<K extends Kind>(kind: K, obj: ResourceOf<K>): Promise<ResourceOf<K>>;
  /** Replaces status only, with the same resourceVersion check; generation unchanged. */
  updateStatus<K extends Kind>(kind: K, obj: ResourceOf<K>): Promise<ResourceOf<K>>;
  /** Deletes; KUMO_E_*_NOT_FOUND if absent; KUMO_E_CONFLICT if resourceVersion is given and differs. */
  delete<K extends Kind>(kind: K, namespace: string, name: string, resourceVersion?: string): Promise<ResourceOf<K>>;
  /**
   * Streams changes of a kind. Without `sinceResourceVersion`, first emits ADDED for every
   * existing object, then live changes; with it, only changes after that version.
   */
  watch<K extends Kind>(kind: K, options?: { sinceResourceVersion?: string }): Watch<K>;
  close(): Promise<void>;
}

/** Query for invocation records. */
export interface InvocationQuery {
  namespace: string;
  function: string;
  /** Records after this sequence number (for --follow). */
  afterSeq?: number;
  /** At most this many: the newest ones, or with afterSeq the first ones after it. */
  limit?: number;
}

/** An invocation record with its sequence number (increasing, never reused). */
export interface InvocationEntry {
  seq: number;
  record: InvocationRecord;
}

/** Where invocation records go: appended in batches off the hot path, read by `kumo logs`. */
export interface InvocationLog {
  /** Queues a record; it is written within about 100 ms, in batches (never blocks the caller). */
  append(record: InvocationRecord): void;
  /** Records oldest-first, each with its sequence number. */
  query(q: InvocationQuery): Promise<InvocationEntry[]>;
  /**
   * Calls `listener` with each function's records as they are written (oldest-first), for
   * `kumo logs --follow`; returns an unsubscribe function. To follow without gaps, subscribe
   * first, then query, and skip entries whose seq the query already returned.
   */
  subscribe(namespace: string, fn: string, listener: (entries: InvocationEntry[]) => void): () => void;
  /** Writes everything queued. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Content-addressed blobs: source archives and built bundles, keyed by sha256:<hex>. */
export interface BlobStore {
  /** Stores bytes and returns their digest; storing the same bytes twice is a no-op. */
  put(bytes: Uint8Array): Promise<string>;
  get(digest: string): Promise<Uint8Array | undefined>;
  has(digest: string): Promise<boolean>;
  /** A path on disk for the blob (for runtimes that load files). */
  pathOf(digest: string): string;
}
