// The store module: the resource Store, InvocationLog and BlobStore interfaces, and their
// embedded implementations (SQLite in `<dataDir>/kumo.db`, blobs under `<dataDir>/blobs`).
export type { BlobStore, InvocationEntry, InvocationLog, InvocationQuery, NewResource, Store, Watch, WatchEvent } from "./store.ts";
export { DATABASE_FILE, inTransaction, migrate, openDatabase } from "./database.ts";
export type { DatabaseOptions, Migration } from "./database.ts";
export { SqliteStore, openSqliteStore } from "./sqlite-store.ts";
export type { SqliteStoreOptions } from "./sqlite-store.ts";
export { SqliteInvocationLog, openInvocationLog } from "./invocation-log.ts";
export type { InvocationLogOptions } from "./invocation-log.ts";
export { FileBlobStore, digestOf, isDigest } from "./blob-store.ts";
