import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Trigger } from "../model/index.ts";
import { globalFlags, parseFlags } from "./args.ts";
import { kumo, NOW, stubServer } from "./cli.fixture.ts";
import { shorthandTable } from "./shorthands.ts";
import { describeTrigger, filterSummary, triggerCommand, triggerSpecFromFlags, triggerTable } from "./trigger.ts";

const create = triggerCommand.subcommands.find((c) => c.name === "create")!;

function spec(args: string[]): ReturnType<typeof triggerSpecFromFlags> {
  const { values } = parseFlags(args, { ...globalFlags, ...create.flags }, "trigger create");
  return triggerSpecFromFlags(values, process.cwd());
}

function trigger(name: string, source: Trigger["spec"]["source"], status: Trigger["status"] = {}): Trigger {
  return {
    apiVersion: "kumo.dev/v1",
    kind: "Trigger",
    metadata: { name, namespace: "default", uid: "u", resourceVersion: "3", generation: 1, creationTimestamp: "2030-01-01T11:50:00.000Z" },
    spec: { function: "vm-inventory", source, delivery: { retries: 3, backoff: "exponential", backoffDelayMs: 200, maxBackoffMs: 30000, concurrency: 10, ordered: true, deadLetter: true } },
    status,
  };
}

describe("trigger create: flags to spec", () => {
  it.each([
    [["--function", "f", "--on", "vm.create"], { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.create.end" } } }],
    [["--function", "f", "--on", "vm.error"], { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.create.error" } } }],
    [["--function", "f", "--on", "port.delete"], { kind: "event", filter: { exact: { type: "org.openstack.neutron.port.delete.end" } } }],
    [["--function", "f", "--on", "volume.attach"], { kind: "event", filter: { exact: { type: "org.openstack.cinder.volume.attach.end" } } }],
    [
      ["--function", "f", "--on", "vm.delete", "--project", "p1", "--host", "compute-01"],
      { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.delete.end", openstackproject: "p1" }, suffix: { source: "/compute-01" } } },
    ],
    [
      ["--function", "f", "--event-type", "com.acme.order", "--filter", "subject=o-1", "--filter-prefix", "source=/shop", "--filter-suffix", "subject=-1", "--source", "/shop/eu", "--from-start"],
      { kind: "event", filter: { exact: { subject: "o-1", type: "com.acme.order", source: "/shop/eu" }, prefix: { source: "/shop" }, suffix: { subject: "-1" } }, fromStart: true },
    ],
    [["--function", "f", "--filter-prefix", "type=org.openstack.nova."], { kind: "event", filter: { prefix: { type: "org.openstack.nova." } } }],
    [["--function", "f", "--cron", "0 2 * * *"], { kind: "cron", schedule: "0 2 * * *", timezone: "UTC" }],
    [
      ["--function", "f", "--cron", "*/5 * * * *", "--timezone", "Asia/Tokyo", "--data", '{"scope":"all"}', "--missed", "run-once"],
      { kind: "cron", schedule: "*/5 * * * *", timezone: "Asia/Tokyo", data: { scope: "all" }, missedFires: "run-once" },
    ],
    [["--function", "f", "--cron", "@daily", "--data", "plain text"], { kind: "cron", schedule: "@daily", timezone: "UTC", data: "plain text" }],
  ])("%j", async (args, source) => {
    expect(await spec(args)).toEqual({ function: "f", source });
  });

  it("sends only the delivery settings given", async () => {
    expect(await spec(["--function", "f", "--on", "vm.create", "--retries", "5", "--backoff", "linear", "--backoff-delay", "1.5s", "--concurrency", "2", "--ordered", "--no-dead-letter"])).toMatchObject({
      delivery: { retries: 5, backoff: "linear", backoffDelayMs: 1500, concurrency: 2, ordered: true, deadLetter: false },
    });
    expect(await spec(["--function", "f", "--on", "vm.create"])).not.toHaveProperty("delivery");
  });

  it("summarises filters in one line", () => {
    expect(filterSummary({ exact: { type: "t" }, prefix: { subject: "vm-" }, suffix: { source: "/h1" } })).toBe("type=t, subject=vm-*, source=*/h1");
    expect(filterSummary({})).toBe("(every event)");
  });
});

describe("trigger create: bad input exits 2 with a hint", () => {
  const hint = "Run 'kumo trigger create --help' for usage.\n";
  it.each([
    [["--on", "vm.create"], "error: missing --function <fn>: the function the trigger invokes\n"],
    [["--function", "f"], 'error: say when the trigger fires: --event-type <type>, --on <shorthand> (OpenStack events; --on list shows them), --filter attr=value, or --cron "<expr>"\n'],
    [["--function", "f", "--cron", "0 2 * * *", "--on", "vm.create"], "error: --cron fires on a schedule, not on events: drop --on\n"],
    [["--function", "f", "--on", "vm.create", "--timezone", "Asia/Tokyo"], "error: --timezone is for --cron triggers only\n"],
    [["--function", "f", "--on", "vm.create", "--event-type", "x"], "error: give --event-type or --on, not both: --on is a shorthand for an OpenStack event type\n"],
    [["--function", "f", "--event-type", "a", "--filter", "type=b"], 'error: --event-type wants exact type="a" but another flag already asks for "b": give one\n'],
    [["--function", "f", "--filter", "Type=x"], 'error: --filter "Type=x": "Type" is not a CloudEvents attribute name: use 1-20 lowercase letters and digits (type, source, subject, openstackproject, …)\n'],
    [["--function", "f", "--filter", "novalue"], 'error: --filter "novalue" is not NAME=value\n'],
    [["--function", "f", "--on", "vm.create", "--retries", "many"], 'error: --retries "many" is not valid: use a whole number from 0 to 100\n'],
    [["--function", "f", "--on", "vm.create", "--backoff", "fibonacci"], 'error: --backoff "fibonacci" is not a backoff: use exponential (default) or linear\n'],
    [["--function", "f", "--on", "vm.create", "--backoff-delay", "soon"], 'error: --backoff-delay "soon" is not a duration: use milliseconds (500) or a number with a unit (500ms, 30s, 2m, 1h)\n'],
    [["--function", "f", "--cron", "0 2 * * *", "--missed", "all"], 'error: --missed "all" is not a policy: use skip (default) or run-once\n'],
    [["--function", "f", "--cron", "0 2 * * *", "--data", "{broken"], "error: --data is not valid JSON: "],
    [["--function", "f", "--on", "vm.create", "--host", "a/b"], 'error: --host "a/b" is not a host name: give the publisher host, as in source openstack/<service>/<host>\n'],
  ])("%j", async (args, message) => {
    const r = await kumo(["trigger", "create", "t", ...args]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.startsWith(message)).toBe(true);
    expect(r.stderr.endsWith(hint)).toBe(true);
  });

  it("prints the shorthand table for an unknown shorthand, and for --on list (exit 0)", async () => {
    const unknown = await kumo(["trigger", "create", "t", "--function", "f", "--on", "vm.explode"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe(`error: --on "vm.explode" is not an OpenStack shorthand; they are:\n${shorthandTable()}${hint}`);
    const list = await kumo(["trigger", "create", "t", "--on", "list"]);
    expect(list).toEqual({ code: 0, stdout: shorthandTable(), stderr: "" });
    expect(list.stdout).toContain("vm.power-off     org.openstack.nova.instance.power_off.end\n");
    expect(list.stdout.split("\n").filter((l) => l !== "")).toHaveLength(16);
  });

  it("names the subcommands when one is missing or mistyped", async () => {
    const bare = await kumo(["trigger"]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain("Usage: kumo trigger <command> [flags]");
    expect(bare.stderr).toMatch(/^ {2}trigger create +Create a trigger/m);
    const typo = await kumo(["trigger", "craete", "x"]);
    expect(typo).toEqual({ code: 2, stdout: "", stderr: 'error: unknown command "trigger craete" (did you mean "trigger create"?): use one of create, list, describe, delete\nRun \'kumo trigger --help\' for usage.\n' });
    const missing = await kumo(["-n", "prod", "trigger", "describe"]);
    expect(missing.stderr).toBe("error: missing <name>: kumo trigger describe <name> [flags]\nRun 'kumo trigger describe --help' for usage.\n");
    const help = await kumo(["trigger", "create", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: kumo trigger create <name> [flags]");
    expect(help.stdout).toContain("--no-dead-letter");
  });
});

describe("trigger list and describe output", () => {
  const onVm = trigger("on-vm", { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.create.end" }, suffix: { source: "/compute-01" } } }, {
    conditions: [{ type: "Ready", status: "True", reason: "Subscribed", message: "receiving events", lastTransitionTime: "2030-01-01T11:59:00.000Z" }],
    startOffsets: { "1": "40", "0": "12" },
  });
  const nightly = trigger("nightly", { kind: "cron", schedule: "0 2 * * *", timezone: "Asia/Tokyo", data: { scope: "all" } });

  it("lists triggers as a table", () => {
    expect(triggerTable([onVm, nightly], NOW)).toBe(
      [
        "NAME      FUNCTION       READY   AGE   SOURCE",
        "on-vm     vm-inventory   True    10m   event type=org.openstack.nova.instance.create.end, source=*/compute-01",
        'nightly   vm-inventory   -       10m   cron "0 2 * * *" Asia/Tokyo',
        "",
      ].join("\n"),
    );
  });

  it("describes an event trigger with its filter, delivery, conditions and start offsets", () => {
    const text = describeTrigger(onVm, NOW);
    expect(text).toContain('Filter:       type is "org.openstack.nova.instance.create.end" and source ends with "/compute-01"\n');
    expect(text).toContain("Retries:      3, exponential backoff from 200 ms up to 30.0 s\n");
    expect(text).toContain("Concurrency:  10 events at once, in order per partition key\n");
    expect(text).toContain("Conditions:\n  Ready=True  Subscribed  (60s ago)\n    receiving events\n");
    expect(text).toContain("Start offsets:\n  PARTITION   OFFSET\n  0           12\n  1           40\n");
  });

  it("describes a cron trigger with its schedule and data", () => {
    const text = describeTrigger(nightly, NOW);
    expect(text).toContain("Schedule:      0 2 * * *\nTime zone:     Asia/Tokyo\nMissed fires:  skip\nData:          {\"scope\":\"all\"}\n");
    expect(text).not.toContain("Start offsets");
  });
});

describe("trigger commands against a stand-in api", () => {
  const TRIGGERS = "/apis/kumo.dev/v1/namespaces/default/triggers";
  const sent: unknown[] = [];
  let stub: Awaited<ReturnType<typeof stubServer>>;
  const onVm = trigger("on-vm", { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.create.end" } } });
  beforeAll(async () => {
    stub = await stubServer({
      [`POST ${TRIGGERS}`]: (_req, body) => {
        const parsed = JSON.parse(body) as { metadata: { name: string }; spec: Trigger["spec"] };
        sent.push(parsed);
        if (parsed.spec.source.kind === "cron" && parsed.spec.source.schedule === "61 * * * *") {
          const message = "invalid trigger: spec.source.schedule: \"61 * * * *\" is not a cron expression: minute 61 is out of range 0-59";
          return { status: 400, body: { error: { code: "KUMO_E_VALIDATION", message, details: [{ field: "spec.source.schedule", message: '"61 * * * *" is not a cron expression: minute 61 is out of range 0-59' }] } } };
        }
        return { status: 201, body: { ...onVm, metadata: { ...onVm.metadata, name: parsed.metadata.name }, spec: { ...onVm.spec, ...parsed.spec } } };
      },
      [`GET ${TRIGGERS}`]: () => ({ status: 200, body: { items: [onVm] } }),
      [`GET ${TRIGGERS}/on-vm`]: () => ({ status: 200, body: onVm }),
      [`DELETE ${TRIGGERS}/on-vm`]: () => ({ status: 200, body: onVm }),
    });
  });
  afterAll(() => stub.close());

  it("creates a trigger from a shorthand and prints what fires it", async () => {
    const r = await kumo(["trigger", "create", "on-vm", "--function", "vm-inventory", "--on", "vm.create", "--server", stub.url]);
    expect(r).toEqual({ code: 0, stdout: 'Created trigger "on-vm": event type=org.openstack.nova.instance.create.end → function "vm-inventory"\n', stderr: "" });
    expect(sent.at(-1)).toEqual({ metadata: { name: "on-vm" }, spec: { function: "vm-inventory", source: { kind: "event", filter: { exact: { type: "org.openstack.nova.instance.create.end" } } } } });
  });

  it("prints the server's reason for a bad cron expression and exits 1", async () => {
    const r = await kumo(["trigger", "create", "bad", "--function", "vm-inventory", "--cron", "61 * * * *", "--server", stub.url]);
    expect(r).toEqual({ code: 1, stdout: "", stderr: 'error: invalid trigger: spec.source.schedule: "61 * * * *" is not a cron expression: minute 61 is out of range 0-59\n' });
  });

  it("lists, describes and deletes", async () => {
    expect((await kumo(["trigger", "list", "--server", stub.url])).stdout).toMatch(/^NAME +FUNCTION +READY +AGE +SOURCE\non-vm +vm-inventory +- +10m +event type=org\.openstack\.nova\.instance\.create\.end\n$/);
    expect(JSON.parse((await kumo(["trigger", "list", "-o", "json", "--server", stub.url])).stdout)).toEqual([onVm]);
    expect((await kumo(["trigger", "describe", "on-vm", "--server", stub.url])).stdout).toContain("Function:     vm-inventory\n");
    expect(await kumo(["trigger", "delete", "on-vm", "--server", stub.url])).toEqual({ code: 0, stdout: 'Deleted trigger "on-vm" from namespace "default".\n', stderr: "" });
  });
});
