import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RevisionServing } from "../api/index.ts";
import type { KumoFunction, Revision, TrafficTarget } from "../model/index.ts";
import { DIGEST, fn, kumo, NOW, stubServer } from "./cli.fixture.ts";
import { describeText, summarize } from "./describe.ts";
import { parseTraffic, previousRevision, resolveRevisionRef, servingTable, trafficTable } from "./traffic.ts";

function revision(name: string, generation: number, ready?: "True" | "False"): Revision {
  return {
    apiVersion: "kumo.dev/v1",
    kind: "Revision",
    metadata: { name, namespace: "default", uid: name, resourceVersion: "1", generation: 1, creationTimestamp: "2030-01-01T11:00:00.000Z", ownerName: "hello" },
    spec: { functionName: "hello", generation, artifact: DIGEST, sourceDigest: DIGEST, runtime: "isolate", env: {}, limits: { timeoutMs: 1000, memoryMb: 64 }, concurrency: 1, scale: { min: 0, max: 1, target: 1, scaleToZeroGraceSeconds: 30 } },
    status: ready === undefined ? {} : { conditions: [{ type: "Ready", status: ready, reason: "r", message: "m", lastTransitionTime: "2030-01-01T11:00:00.000Z" }] },
  };
}

/** hello with three revisions, the third the latest ready one, and optionally a traffic split. */
function hello(traffic?: TrafficTarget[], resourceVersion = "7"): KumoFunction {
  const f = fn("hello", { ready: "True", generation: 3 });
  return {
    ...f,
    metadata: { ...f.metadata, resourceVersion },
    spec: traffic === undefined ? f.spec : { ...f.spec, traffic },
    status: { ...f.status, latestReadyRevision: "hello-00003", latestCreatedRevision: "hello-00003" },
  };
}

const REVISIONS = [revision("hello-00001", 1), revision("hello-00002", 2), revision("hello-00003", 3)];

describe("revision references", () => {
  it.each([
    ["latest", { latestRevision: true }],
    ["@2", { revision: "hello-00002" }],
    ["00002", { revision: "hello-00002" }],
    ["12", { revision: "hello-00012" }],
    ["hello-00003", { revision: "hello-00003" }],
  ])("%s", (ref, want) => {
    expect(resolveRevisionRef(ref, "hello", "traffic")).toEqual(want);
  });

  it("rejects @0 and @x", () => {
    expect(() => resolveRevisionRef("@0", "hello", "traffic")).toThrow('revision "@0" does not exist: revisions count from 1 (hello-00001)');
    expect(() => resolveRevisionRef("@x", "hello", "traffic")).toThrow('revision "@x" is not a revision: use @<number> (@2), a full name (hello-00002) or latest');
  });
});

describe("traffic splits", () => {
  it("parses percents and tags; a tagged revision without a percent gets 0%", () => {
    expect(parseTraffic("hello", ["@1=90", "latest=10%"], ["latest=canary", "@2=previous"])).toEqual([
      { revision: "hello-00001", percent: 90 },
      { latestRevision: true, percent: 10, tag: "canary" },
      { revision: "hello-00002", percent: 0, tag: "previous" },
    ]);
    expect(parseTraffic("hello", ["hello-00003=100"], [])).toEqual([{ revision: "hello-00003", percent: 100 }]);
  });

  it.each([
    [["@1=60", "@2=30"], [], "percents add up to 90, not 100 (hello-00001=60 hello-00002=30): make them add up to 100"],
    [["@1=60", "@2=60"], [], "percents add up to 120, not 100 (hello-00001=60 hello-00002=60): make them add up to 100"],
    [["@1=50", "00001=50"], [], "revision hello-00001 is given twice: give each revision once"],
    [["@1=half"], [], '"@1=half": "half" is not a percent: use a whole number from 0 to 100'],
    [["@1=101"], [], '"@1=101": "101" is not a percent: use a whole number from 0 to 100'],
    [["@1"], [], '"@1" is not <revision>=<percent>: e.g. hello-00002=90 latest=10'],
    [["@1=100"], ["@1=Canary"], '--tag "@1=Canary": tag "Canary" is not a DNS-1123 label'],
    [["@1=100"], ["@1=a", "@2=a"], '--tag "@2=a": tag "a" is used twice: each tag names one revision'],
    [["@1=100"], ["@1=a", "@1=b"], 'revision hello-00001 has two tags ("a" and "b"): give it one'],
  ])("rejects %j %j", (args, tags, message) => {
    expect(() => parseTraffic("hello", args, tags)).toThrow(message);
  });

  it("checks percents before calling the api: exit 2 even with no server", async () => {
    const r = await kumo(["traffic", "hello", "@1=60", "@2=30", "--server", "http://127.0.0.1:1"]);
    expect(r).toEqual({ code: 2, stdout: "", stderr: "error: percents add up to 90, not 100 (hello-00001=60 hello-00002=30): make them add up to 100\nRun 'kumo traffic --help' for usage.\n" });
    const both = await kumo(["traffic", "hello", "@1=100", "--latest", "--server", "http://127.0.0.1:1"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("--latest sends all traffic to the latest revision: drop the rev=percent arguments and --tag");
  });
});

describe("rollback: the previous ready revision", () => {
  it.each<[string, Revision[], string | undefined, string | undefined]>([
    ["the one before the latest", REVISIONS, "hello-00003", "hello-00002"],
    ["skipping a failed one", [revision("hello-00001", 1), revision("hello-00002", 2, "False"), revision("hello-00003", 3, "True")], "hello-00003", "hello-00001"],
    ["before the latest ready, not the newest", [...REVISIONS, revision("hello-00004", 4)], "hello-00003", "hello-00002"],
    ["none with a single revision", [revision("hello-00001", 1)], "hello-00001", undefined],
    ["none without a ready revision", REVISIONS, undefined, undefined],
  ])("%s", (_name, revisions, latest, want) => {
    const f = hello();
    const status = latest === undefined ? { url: f.status.url! } : { ...f.status, latestReadyRevision: latest };
    expect(previousRevision({ ...f, status }, revisions)?.metadata.name).toBe(want);
  });
});

describe("traffic in describe", () => {
  const split = hello([
    { revision: "hello-00002", percent: 90 },
    { latestRevision: true, percent: 10, tag: "canary" },
  ]);
  const serving: RevisionServing[] = [
    { revision: "hello-00002", instances: 3, starting: 0, inflight: 12, queued: 0, desired: 3 },
    { revision: "hello-00003", instances: 1, starting: 1, inflight: 2, queued: 4, desired: 2 },
    { revision: "hello-00001", instances: 1, starting: 0, inflight: 0, queued: 0, desired: 0 },
  ];

  it("shows the split with a URL per tag", () => {
    expect(trafficTable(split)).toBe(
      [
        "PERCENT   REVISION               TAG      URL",
        "90%       hello-00002            -        -",
        "10%       latest (hello-00003)   canary   http://127.0.0.1:8080/default/hello@canary",
        "",
      ].join("\n"),
    );
  });

  it("shows instances, in-flight and queued requests per revision", () => {
    expect(servingTable(split, serving)).toBe(
      [
        "REVISION      TRAFFIC   INSTANCES         IN-FLIGHT   QUEUED   DESIRED",
        "hello-00003   10%       1 (+1 starting)   2           4        2",
        "hello-00002   90%       3                 12          0        3",
        "hello-00001   0%        1                 0           0        0",
        "",
      ].join("\n"),
    );
    expect(servingTable(hello(), [])).toBe("REVISION      TRAFFIC   INSTANCES   IN-FLIGHT   QUEUED   DESIRED\nhello-00003   100%      -           -           -        -\n");
  });

  it("puts both in the function's description", () => {
    const text = describeText(split, REVISIONS, summarize([]), NOW, serving);
    expect(text).toContain("Traffic:         90% hello-00002, 10% latest (hello-00003) tag canary\n");
    expect(text).toContain("\nTraffic:\n  PERCENT   REVISION");
    expect(text).toContain("\nServing:\n  REVISION      TRAFFIC   INSTANCES");
  });
});

describe("traffic and rollback against a stand-in api", () => {
  const FN = "/apis/kumo.dev/v1/namespaces/default/functions/hello";
  let current: KumoFunction = hello();
  let conflicts = 0;
  let gets = 0;
  const puts: { metadata: { resourceVersion?: string }; spec: { traffic?: TrafficTarget[] } }[] = [];
  let stub: Awaited<ReturnType<typeof stubServer>>;
  beforeAll(async () => {
    stub = await stubServer({
      [`GET ${FN}`]: () => {
        gets++;
        return { status: 200, body: current };
      },
      "GET /apis/kumo.dev/v1/namespaces/default/revisions": () => ({ status: 200, body: { items: REVISIONS } }),
      [`PUT ${FN}`]: (_req, body) => {
        const sent = JSON.parse(body) as (typeof puts)[number];
        puts.push(sent);
        if (conflicts > 0) {
          conflicts--;
          // Someone else wrote the function: the next read sees a new version.
          current = { ...current, metadata: { ...current.metadata, resourceVersion: `${Number(current.metadata.resourceVersion) + 1}` } };
          return { status: 409, body: { error: { code: "KUMO_E_CONFLICT", message: "changed", details: [] } } };
        }
        const { traffic: _traffic, ...rest } = current.spec;
        current = { ...current, spec: sent.spec.traffic === undefined ? rest : { ...rest, traffic: sent.spec.traffic } };
        return { status: 200, body: current };
      },
      [`GET ${FN}/serving`]: () => ({ status: 200, body: { items: [] } }),
    });
  });
  beforeEach(() => {
    current = hello();
    puts.length = 0;
    gets = 0;
  });
  afterAll(() => stub.close());

  it("sets a split with tags, sending the resourceVersion it read", async () => {
    const r = await kumo(["traffic", "hello", "@2=90", "latest=10", "--tag", "latest=canary", "--server", stub.url]);
    expect(r.code).toBe(0);
    expect(puts).toHaveLength(1);
    expect(puts[0]!.metadata.resourceVersion).toBe("7");
    expect(puts[0]!.spec.traffic).toEqual([
      { revision: "hello-00002", percent: 90 },
      { latestRevision: true, percent: 10, tag: "canary" },
    ]);
    expect(r.stdout).toBe(`Traffic of "hello" is now:\n${trafficTable(current)}`);
    expect(r.stdout).toContain("http://127.0.0.1:8080/default/hello@canary");
  });

  it("reads again and retries when the function changed meanwhile", async () => {
    conflicts = 2;
    const r = await kumo(["traffic", "hello", "--latest", "--server", stub.url]);
    expect(r.code).toBe(0);
    expect(gets).toBe(3);
    expect(puts.map((p) => p.metadata.resourceVersion)).toEqual(["7", "8", "9"]);
    expect(current.spec.traffic).toEqual([{ latestRevision: true, percent: 100 }]);
  });

  it("rejects a revision the function does not have, listing those it has", async () => {
    const r = await kumo(["traffic", "hello", "@7=100", "--server", stub.url]);
    expect(r).toEqual({ code: 1, stdout: "", stderr: 'error: function "hello" has no revision "hello-00007": it has hello-00003, hello-00002, hello-00001 (see kumo revisions hello)\n' });
    expect(puts).toEqual([]);
  });

  it("rolls back to the revision before the latest ready one and says so", async () => {
    const r = await kumo(["rollback", "hello", "--server", stub.url]);
    expect(r).toEqual({
      code: 0,
      stdout: 'Rolled back "hello": 100% hello-00002 (was 100% latest (hello-00003)).\nNew deploys of "hello" take no traffic until: kumo traffic hello --latest\n',
      stderr: "",
    });
    expect(puts[0]!.spec.traffic).toEqual([{ revision: "hello-00002", percent: 100 }]);
  });

  it("rolls back to a named revision", async () => {
    expect((await kumo(["rollback", "hello", "@1", "--server", stub.url])).code).toBe(0);
    expect(puts[0]!.spec.traffic).toEqual([{ revision: "hello-00001", percent: 100 }]);
  });

  it("shows the current split without arguments", async () => {
    current = hello([{ revision: "hello-00001", percent: 100, tag: "stable" }]);
    const r = await kumo(["traffic", "hello", "--server", stub.url]);
    expect(r.stdout).toBe("PERCENT   REVISION      TAG      URL\n100%      hello-00001   stable   http://127.0.0.1:8080/default/hello@stable\n");
    expect(puts).toEqual([]);
  });
});
