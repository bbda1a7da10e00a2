import { describe, expect, it } from "vitest";
import type { EventFilter, KumoCloudEvent } from "../model/index.ts";
import { TriggerIndex, matches } from "./filter.ts";

const event: KumoCloudEvent = {
  specversion: "1.0",
  id: "e1",
  source: "openstack/nova/compute-01",
  type: "org.openstack.nova.instance.create.end",
  subject: "9f1c-instance",
  project: "p-42",
  priority: 3,
};

describe("matches", () => {
  const cases: [string, EventFilter, boolean][] = [
    ["empty filter matches all", {}, true],
    ["empty maps match all", { exact: {}, prefix: {}, suffix: {} }, true],
    ["exact type", { exact: { type: "org.openstack.nova.instance.create.end" } }, true],
    ["exact type differs", { exact: { type: "org.openstack.nova.instance.delete.end" } }, false],
    ["exact is not prefix", { exact: { type: "org.openstack.nova" } }, false],
    ["exact on extension", { exact: { project: "p-42" } }, true],
    ["exact on numeric extension compares its text", { exact: { priority: "3" } }, true],
    ["exact on missing attribute", { exact: { tenant: "x" } }, false],
    ["prefix on type", { prefix: { type: "org.openstack.nova." } }, true],
    ["prefix does not match", { prefix: { type: "org.openstack.neutron." } }, false],
    ["prefix on missing attribute", { prefix: { dataschema: "" } }, false],
    ["empty prefix matches a present attribute", { prefix: { subject: "" } }, true],
    ["suffix on type", { suffix: { type: ".end" } }, true],
    ["suffix does not match", { suffix: { type: ".start" } }, false],
    ["suffix on subject", { suffix: { subject: "-instance" } }, true],
    ["all clauses must match", { exact: { project: "p-42" }, prefix: { type: "org.openstack." }, suffix: { type: ".end" } }, true],
    ["one failing clause fails", { exact: { project: "p-42" }, prefix: { type: "org.openstack." }, suffix: { type: ".start" } }, false],
    ["two exact attributes, one wrong", { exact: { type: event.type, source: "openstack/neutron/net-01" } }, false],
    ["attribute names are case-sensitive (lowercase)", { exact: { Type: event.type } }, false],
  ];
  it.each(cases)("%s", (_name, filter, expected) => {
    expect(matches(filter, event)).toBe(expected);
  });
});

describe("TriggerIndex", () => {
  const entry = (key: string, filter: EventFilter) => ({ key, filter });

  it("checks only the triggers of the event's type plus the untyped ones", () => {
    const index = new TriggerIndex<{ key: string; filter: EventFilter }>();
    index.set(entry("create", { exact: { type: "a.create" } }));
    index.set(entry("create-p1", { exact: { type: "a.create", project: "p1" } }));
    index.set(entry("delete", { exact: { type: "a.delete" } }));
    index.set(entry("all-a", { prefix: { type: "a." } }));
    index.set(entry("everything", {}));
    expect(index.candidates("a.create")).toBe(4);
    expect(index.candidates("a.delete")).toBe(3);
    expect(index.candidates("b.other")).toBe(2);
    const keys = (type: string, extra: Record<string, string> = {}): string[] =>
      index.match({ specversion: "1.0", id: "1", source: "s", type, ...extra }).map((e) => e.key);
    expect(keys("a.create", { project: "p1" })).toEqual(["create", "create-p1", "all-a", "everything"]);
    expect(keys("a.create", { project: "p2" })).toEqual(["create", "all-a", "everything"]);
    expect(keys("b.other")).toEqual(["everything"]);
  });

  it("replaces an entry on set and forgets it on delete", () => {
    const index = new TriggerIndex<{ key: string; filter: EventFilter }>();
    index.set(entry("t", { exact: { type: "x" } }));
    index.set(entry("t", { exact: { type: "y" } }));
    const ev = (type: string): KumoCloudEvent => ({ specversion: "1.0", id: "1", source: "s", type });
    expect(index.match(ev("x"))).toEqual([]);
    expect(index.match(ev("y")).map((e) => e.key)).toEqual(["t"]);
    index.delete("t");
    expect(index.size).toBe(0);
    expect(index.match(ev("y"))).toEqual([]);
  });
});
