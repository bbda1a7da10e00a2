// Content addresses: every source archive and artifact is named by the sha256 of its bytes, so
// the same input always gets the same name and storing it twice is a no-op.

import { createHash } from "node:crypto";

/** The content address of some bytes (a string is hashed as UTF-8): "sha256:<64 hex>". */
export function digestOf(bytes: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}
