// Which triggers an event goes to: the exact / prefix / suffix filter of an event trigger, and an
// index keyed by exact `type` so an event is checked only against triggers that could match it.

import type { EventFilter, KumoCloudEvent } from "../model/index.ts";

/** An attribute or extension as a string, or undefined when absent or not a scalar. */
function attribute(event: KumoCloudEvent, name: string): string | undefined {
  const value = event[name];
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

/** True when the event satisfies every clause of the filter; an empty filter matches all events. */
export function matches(filter: EventFilter, event: KumoCloudEvent): boolean {
  if (filter.exact !== undefined) {
    for (const name in filter.exact) if (attribute(event, name) !== filter.exact[name]) return false;
  }
  if (filter.prefix !== undefined) {
    for (const name in filter.prefix) {
      const value = attribute(event, name);
      if (value === undefined || !value.startsWith(filter.prefix[name] ?? "")) return false;
    }
  }
  if (filter.suffix !== undefined) {
    for (const name in filter.suffix) {
      const value = attribute(event, name);
      if (value === undefined || !value.endsWith(filter.suffix[name] ?? "")) return false;
    }
  }
  return true;
}

/** Something the index holds: a key and a filter. */
export interface Filtered {
  readonly key: string;
  readonly filter: EventFilter;
}

/**
 * Event triggers indexed by their exact `type` filter, plus the list of triggers without one. A
 * lookup checks the filters of that type's triggers and of the untyped ones only.
 */
export class TriggerIndex<T extends Filtered> {
  private readonly entries = new Map<string, T>();
  private byType = new Map<string, T[]>();
  private untyped: T[] = [];

  /** Adds or replaces the entry with this key. */
  set(entry: T): void {
    this.entries.set(entry.key, entry);
    this.rebuild();
  }

  /** Removes the entry with this key, if present. */
  delete(key: string): void {
    if (this.entries.delete(key)) this.rebuild();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entries whose filter the event satisfies, typed ones first. */
  match(event: KumoCloudEvent): T[] {
    const out: T[] = [];
    const typed = this.byType.get(event.type);
    if (typed !== undefined) for (const entry of typed) if (matches(entry.filter, event)) out.push(entry);
    for (const entry of this.untyped) if (matches(entry.filter, event)) out.push(entry);
    return out;
  }

  /** How many entries a lookup of this type checks (for tests and metrics). */
  candidates(type: string): number {
    return (this.byType.get(type)?.length ?? 0) + this.untyped.length;
  }

  // Triggers change rarely and events arrive often, so the lookup tables are rebuilt on change.
  private rebuild(): void {
    const byType = new Map<string, T[]>();
    const untyped: T[] = [];
    for (const entry of this.entries.values()) {
      const type = entry.filter.exact?.["type"];
      if (type === undefined) untyped.push(entry);
      else {
        const list = byType.get(type);
        if (list === undefined) byType.set(type, [entry]);
        else list.push(entry);
      }
    }
    this.byType = byType;
    this.untyped = untyped;
  }
}
