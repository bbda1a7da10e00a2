import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeadLetterItem } from "../api/index.ts";
import { globalFlags, parseFlags } from "./args.ts";
import { kumo, NOW, stubServer } from "./cli.fixture.ts";
import { deadLetterTable, eventFromFlags, eventsCommand } from "./events.ts";

const publish = eventsCommand.subcommands.find((c) => c.name === "publish")!;

function event(args: string[], cwd = process.cwd()): ReturnType<typeof eventFromFlags> {
  const { values } = parseFlags(args, { ...globalFlags, ...publish.flags }, "events publish");
  return eventFromFlags(values, cwd, NOW, () => "generated-id");
}

const ITEMS: DeadLetterItem[] = [
  {
    id: "0:17",
    letter: {
      origin: "dispatcher",
      reason: "function failed after 4 attempts: TypeError: boom\n    at handler",
      event: { specversion: "1.0", id: "ev-1", source: "openstack/nova/compute-01", type: "org.openstack.nova.instance.create.end" },
      trigger: { namespace: "default", name: "on-vm", function: "vm-inventory" },
      attempts: [1, 2, 3, 4].map((i) => ({ at: `2030-01-01T11:00:0${i}.000Z`, error: "TypeError: boom" })),
      time: "2030-01-01T11:00:05.000Z",
    },
  },
  { id: "0:18", letter: { origin: "provider/openstack", reason: "not an oslo.messaging notification", raw: "{}", rawEncoding: "utf8", time: "2030-01-01T11:01:00.000Z" } },
];

describe("events publish: flags to a CloudEvent", () => {
  it("builds a structured event with a generated id, the time now, JSON data and extensions", async () => {
    expect(await event(["--type", "com.acme.order.created", "--source", "/orders", "--subject", "o-42", "--data", '{"total":12}', "--extension", "tenant=acme", "--extension", "priority=high"])).toEqual({
      specversion: "1.0",
      id: "generated-id",
      source: "/orders",
      type: "com.acme.order.created",
      subject: "o-42",
      time: "2030-01-01T12:00:00.000Z",
      datacontenttype: "application/json",
      data: { total: 12 },
      tenant: "acme",
      priority: "high",
    });
  });

  it("reads @file data and sends text that is not JSON as text", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kumo-events-"));
    try {
      await writeFile(join(dir, "instance.json"), '{"uuid":"vm-1"}');
      expect(await event(["--type", "t", "--source", "s", "--data", "@instance.json", "--id", "mine"], dir)).toMatchObject({ id: "mine", data: { uuid: "vm-1" }, datacontenttype: "application/json" });
      expect(await event(["--type", "t", "--source", "s", "--data", "hello"], dir)).toMatchObject({ data: "hello", datacontenttype: "text/plain; charset=utf-8" });
      await expect(event(["--type", "t", "--source", "s", "--data", "@missing.json"], dir)).rejects.toThrow("--data @missing.json: cannot read");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [["--source", "s"], "error: missing --type <type>: the CloudEvents type, e.g. com.acme.order.created\n"],
    [["--type", "t"], "error: missing --source <source>: where the event comes from, e.g. /orders or acme/billing\n"],
    [["--type", "t", "--source", "s", "--extension", "Tenant=x"], 'error: --extension "Tenant=x": "Tenant" is not a CloudEvents extension name: use 1-20 lowercase letters and digits\n'],
    [["--type", "t", "--source", "s", "--extension", "subject=x"], 'error: --extension "subject=x": "subject" is a CloudEvents attribute, not an extension: set it with --type, --source, --subject, --id or --data\n'],
    [["--type", "t", "--source", "s", "--extension", "x"], 'error: --extension "x" is not NAME=value\n'],
    [["--type", "t", "--source", "s", "--data", '{"a":'], "error: --data is not valid JSON: "],
  ])("rejects %j with exit 2", async (args, message) => {
    const r = await kumo(["events", "publish", ...args, "--server", "http://127.0.0.1:1"]);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(message)).toBe(true);
    expect(r.stderr.endsWith("Run 'kumo events publish --help' for usage.\n")).toBe(true);
  });
});

describe("events replay: arguments", () => {
  it.each([
    [[], "error: say what to replay: a dead-letter id (see kumo events dlq) or --all\n"],
    [["0:1", "--all"], "error: give a dead-letter id or --all, not both\n"],
    [["0:1", "--trigger", "on-vm"], "error: --trigger goes with --all: a dead-letter id already names one letter\n"],
    [["0:1", "0:2"], 'error: unexpected argument "0:2": kumo events replay [dead-letter-id] [flags]\n'],
  ])("rejects %j with exit 2", async (args, message) => {
    const r = await kumo(["events", "replay", ...args, "--server", "http://127.0.0.1:1"]);
    expect(r).toEqual({ code: 2, stdout: "", stderr: `${message}Run 'kumo events replay --help' for usage.\n` });
  });

  it("rejects a bad --limit for dlq", async () => {
    const r = await kumo(["events", "dlq", "--limit", "0", "--server", "http://127.0.0.1:1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--limit "0" is not valid: use a whole number from 1 to 1000');
  });
});

describe("dead letters as a table", () => {
  it("shows id, time, origin, trigger, event, attempts and the reason's first line", () => {
    expect(deadLetterTable(ITEMS)).toBe(
      [
        "ID     TIME                       ORIGIN               TRIGGER   EVENT-TYPE                               EVENT-ID   ATTEMPTS   REASON",
        "0:17   2030-01-01T11:00:05.000Z   dispatcher           on-vm     org.openstack.nova.instance.create.end   ev-1       4          function failed after 4 attempts: TypeError: boom",
        "0:18   2030-01-01T11:01:00.000Z   provider/openstack   -         -                                        -          0          not an oslo.messaging notification",
        "",
      ].join("\n"),
    );
  });
});

describe("events commands against a stand-in api", () => {
  const NS = "/apis/kumo.dev/v1/namespaces/default";
  const bodies: Record<string, string[]> = {};
  const types: string[] = [];
  let stub: Awaited<ReturnType<typeof stubServer>>;
  let off: Awaited<ReturnType<typeof stubServer>>;
  const keep = (key: string, body: string): void => {
    (bodies[key] ??= []).push(body);
  };
  beforeAll(async () => {
    stub = await stubServer({
      "POST /events": (req, body) => {
        keep("publish", body);
        types.push(req.headers["content-type"] ?? "");
        const id = (JSON.parse(body) as { id: string }).id;
        return { status: 202, body: { accepted: 1, ids: [id] } };
      },
      [`GET ${NS}/deadletters`]: (req) => {
        keep("list", req.url ?? "");
        return { status: 200, body: { items: ITEMS } };
      },
      [`POST ${NS}/deadletters/0%3A17/replay`]: () => ({ status: 200, body: { replayed: 1 } }),
      [`POST ${NS}/deadletters/replay`]: (_req, body) => {
        keep("replay-all", body);
        return { status: 200, body: { replayed: 2 } };
      },
    });
    const unavailable = { status: 503, body: { error: { code: "KUMO_E_UNAVAILABLE", message: "eventing is not enabled on this server: dead letters cannot be listed or replayed", details: [] } } };
    off = await stubServer({ [`GET ${NS}/deadletters`]: () => unavailable });
  });
  afterAll(async () => {
    await stub.close();
    await off.close();
  });

  it("publishes in structured mode and prints the event id", async () => {
    const r = await kumo(["events", "publish", "--type", "com.acme.x", "--source", "/x", "--id", "ev-9", "--data", '{"a":1}', "--server", stub.url]);
    expect(r).toEqual({ code: 0, stdout: "Published event ev-9\n", stderr: "" });
    expect(types).toEqual(["application/cloudevents+json; charset=utf-8"]);
    expect(JSON.parse(bodies.publish![0]!)).toEqual({ specversion: "1.0", id: "ev-9", source: "/x", type: "com.acme.x", time: "2030-01-01T12:00:00.000Z", datacontenttype: "application/json", data: { a: 1 } });
  });

  it("lists dead letters as a table or as full JSON, passing --limit and --trigger", async () => {
    const table = await kumo(["events", "dlq", "--limit", "5", "--trigger", "on-vm", "--server", stub.url]);
    expect(table.stdout).toBe(deadLetterTable(ITEMS));
    expect(bodies.list).toEqual([`${NS}/deadletters?limit=5&trigger=on-vm`]);
    expect(JSON.parse((await kumo(["events", "dlq", "-o", "json", "--server", stub.url])).stdout)).toEqual(ITEMS);
  });

  it("replays one dead letter, or all of one trigger's", async () => {
    expect(await kumo(["events", "replay", "0:17", "--server", stub.url])).toEqual({ code: 0, stdout: "Replayed 1 dead letter (0:17).\n", stderr: "" });
    expect(await kumo(["events", "replay", "--all", "--trigger", "on-vm", "--server", stub.url])).toEqual({ code: 0, stdout: 'Replayed 2 dead letters of trigger "on-vm".\n', stderr: "" });
    expect(bodies["replay-all"]).toEqual(['{"trigger":"on-vm"}']);
  });

  it("says when eventing is off, with exit 1", async () => {
    expect(await kumo(["events", "dlq", "--server", off.url])).toEqual({ code: 1, stdout: "", stderr: "error: eventing is not enabled on this server: dead letters cannot be listed or replayed\n" });
  });
});

describe("kumo --help", () => {
  it("lists the traffic, trigger and events commands", async () => {
    const help = await kumo(["--help"]);
    for (const name of ["traffic", "rollback", "trigger create", "trigger list", "trigger describe", "trigger delete", "events publish", "events dlq", "events replay"]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name} +\\S`, "m"));
    }
  });
});
