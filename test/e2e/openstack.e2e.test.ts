// End to end for the reason Kumo exists: nova publishes "VM created" and "VM deleted" on the real
// RabbitMQ, the way oslo.messaging does; `kumo server` (with KUMO_OPENSTACK_AMQP_URL) turns them
// into CloudEvents on the bus, the dispatcher matches the triggers, and the deployed
// examples/vm-inventory function runs with the instance's data, visible in `kumo logs`.

import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, runKumo, startKumoServer, type ServerProcess } from "../support/kumo.ts";

const AMQP_URL = process.env.KUMO_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const run = randomBytes(4).toString("hex");
const exchange = `nova-e2e-${run}`;
const queue = `kumo-e2e-${run}`;
const fixtures = join(repoRoot, "../shared/fixtures/openstack/wire");

let server: ServerProcess;
let env: Record<string, string>;
let connection: amqp.ChannelModel;
let channel: amqp.Channel;

/** Publishes a wire fixture as oslo.messaging does: topic exchange, routing key, kombu's properties, the v2 envelope. */
async function publishFixture(file: string): Promise<{ messageId: string; uuid: string }> {
  const wire = JSON.parse(await readFile(join(fixtures, file), "utf8")) as { routing_key: string; body: { "oslo.message": string } };
  const inner = JSON.parse(wire.body["oslo.message"]) as { message_id: string; payload: { "nova_object.data": { uuid: string } } };
  channel.publish(exchange, wire.routing_key, Buffer.from(JSON.stringify(wire.body)), { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2, priority: 0 });
  return { messageId: inner.message_id, uuid: inner.payload["nova_object.data"].uuid };
}

async function logsUntil(fn: string, needles: string[], timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let out = "";
  while (Date.now() < deadline) {
    out = (await runKumo(["logs", fn], env)).stdout;
    if (needles.every((n) => out.includes(n))) return out;
    await new Promise((r) => setTimeout(r, 300));
  }
  return out;
}

beforeAll(async () => {
  connection = await amqp.connect(AMQP_URL);
  channel = await connection.createChannel();
  // nova declares its exchange (topic, not durable by default) before publishing.
  await channel.assertExchange(exchange, "topic", { durable: false });
  server = await startKumoServer({
    env: {
      KUMO_OPENSTACK_AMQP_URL: AMQP_URL,
      KUMO_OPENSTACK_EXCHANGES: exchange,
      KUMO_OPENSTACK_QUEUE: queue,
    },
  });
  env = { KUMO_SERVER: server.url };
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await channel?.deleteQueue(queue).catch(() => undefined);
  await channel?.deleteExchange(exchange).catch(() => undefined);
  await connection?.close();
});

describe("OpenStack VM create/delete → vm-inventory", () => {
  it("reports the provider connected in /readyz", async () => {
    let body: { checks?: Record<string, { ok: boolean; message: string }> } = {};
    for (let i = 0; i < 50; i++) {
      body = (await (await fetch(`${server.url}/readyz`)).json()) as typeof body;
      if (body.checks?.["provider/openstack"]?.ok === true) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(body.checks?.["provider/openstack"]).toMatchObject({ ok: true });
  });

  it("deploys the example and its triggers", async () => {
    const d = await runKumo(["deploy", join(repoRoot, "examples/vm-inventory"), "--name", "vm-inventory"], env);
    expect(d.code, d.stderr).toBe(0);
    for (const [name, type] of [
      ["on-vm-create", "org.openstack.nova.instance.create.end"],
      ["on-vm-delete", "org.openstack.nova.instance.delete.end"],
    ] as const) {
      const r = await runKumo(["trigger", "create", name, "--function", "vm-inventory", "--event-type", type], env);
      expect(r.code, r.stderr + r.stdout).toBe(0);
    }
  });

  it("runs the function with the instance's data for a VM create and delete", async () => {
    const created = await publishFixture("versioned_instance-create-end.json");
    const deleted = await publishFixture("versioned_instance-delete-end.json");
    expect(deleted.uuid).toBe(created.uuid);
    const out = await logsUntil("vm-inventory", [`registered`, `removed`]);
    expect(out).toMatch(new RegExp(`registered \\S+ \\(${created.uuid}\\) in project \\w+ on host compute`));
    expect(out).toMatch(new RegExp(`removed \\S+ \\(${created.uuid}\\)`));
    expect(out).not.toContain("it was not in the inventory");
    expect(out).toContain("on-vm-create");
  });

  it("maps the legacy notification of the same event to the same trigger", async () => {
    const wire = JSON.parse(await readFile(join(fixtures, "legacy_designate_compute.instance.create.end.json"), "utf8")) as { routing_key: string; body: unknown };
    channel.publish(exchange, wire.routing_key, Buffer.from(JSON.stringify(wire.body)), { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2 });
    const inner = JSON.parse((wire.body as { "oslo.message": string })["oslo.message"]) as { payload: { instance_id: string } };
    const out = await logsUntil("vm-inventory", [`(${inner.payload.instance_id})`]);
    expect(out).toContain(`(${inner.payload.instance_id}) in project`);
  });
});
