// Against a real RabbitMQ (KUMO_TEST_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672):
// notifications published the way oslo.messaging publishes them reach the sink as CloudEvents,
// acks follow the sink, bad messages are dead-lettered, and a dropped connection loses nothing.
// Every run uses its own exchanges, topics and queues and deletes them afterwards.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";
import type { DeadLetter, KumoCloudEvent } from "../../services/model/index.ts";
import type { EventSink } from "../provider.ts";
import { loadOpenStackConfig, type OpenStackConfig } from "./config.ts";
import { OpenStackProvider } from "./provider.ts";
import { EXPECTED, expectedTime, readFixture, wireFixtures } from "./wire-fixtures.ts";

const AMQP_URL = process.env["KUMO_TEST_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672";
const RUN = `kt${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
const quiet = (): void => undefined;

/** An in-memory sink: records what it is given; can be held shut or made to fail. */
class MemorySink implements EventSink {
  readonly events: { event: KumoCloudEvent; partitionKey?: string }[] = [];
  readonly letters: DeadLetter[] = [];
  appendCalls = 0;
  failures = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  async append(events: readonly { event: KumoCloudEvent; partitionKey?: string }[]): Promise<void> {
    this.appendCalls++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error("event bus unavailable");
    }
    if (this.gate !== undefined) await this.gate;
    // Yield like a real durable append would, so deliveries pile up into batches.
    await new Promise((resolve) => setImmediate(resolve));
    this.events.push(...events);
  }
  async deadLetter(letter: DeadLetter): Promise<void> {
    this.letters.push(letter);
  }
  ids(): string[] {
    return this.events.map((e) => e.event.id);
  }
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// One publisher connection for the whole file, acting as the OpenStack services.
let publisherModel: ChannelModel;
let pub: ConfirmChannel;
const createdExchanges = new Set<string>();
const createdQueues = new Set<string>();
const providers: OpenStackProvider[] = [];

/** A provider that afterAll stops even if its test failed (else it would re-declare what we delete). */
function newProvider(config: OpenStackConfig, options: ConstructorParameters<typeof OpenStackProvider>[1] = {}): OpenStackProvider {
  const p = new OpenStackProvider(config, { log: quiet, ...options });
  providers.push(p);
  return p;
}

/** Names for one scenario: its exchanges (nova, neutron, openstack), its topics, its queue. */
function scenario(tag: string, env: Record<string, string> = {}): {
  exchange: (fixtureExchange: string) => string;
  routingKey: (fixtureRoutingKey: string) => string;
  osloQueue: (routingKey: string) => string;
  queue: string;
  config: OpenStackConfig;
} {
  const exchange = (name: string): string => `${RUN}-${tag}-${name}`;
  // oslo topics are configurable; a per-run topic keeps oslo's "<topic>.<priority>" queues of
  // this run apart from any other run (and from a real notifications.info) on the same broker.
  const topic = (name: string): string => `${name}_${RUN}_${tag}`;
  const queue = `kumo-openstack-${RUN}-${tag}`;
  for (const e of ["nova", "neutron", "openstack"]) createdExchanges.add(exchange(e));
  createdQueues.add(queue);
  const config = loadOpenStackConfig({
    KUMO_OPENSTACK_AMQP_URL: AMQP_URL,
    KUMO_OPENSTACK_EXCHANGES: ["nova", "neutron", "openstack"].map(exchange).join(","),
    KUMO_OPENSTACK_TOPICS: `${topic("notifications")},${topic("versioned_notifications")}`,
    KUMO_OPENSTACK_QUEUE: queue,
    KUMO_OPENSTACK_RECONNECT_MIN_MS: "50",
    KUMO_OPENSTACK_RECONNECT_MAX_MS: "1000",
    KUMO_OPENSTACK_RETRY_DELAY_MS: "50",
    KUMO_OPENSTACK_LAG_INTERVAL_MS: "100",
    ...env,
  })!;
  return {
    exchange,
    routingKey: (rk) => {
      const dot = rk.lastIndexOf(".");
      return `${topic(rk.slice(0, dot))}${rk.slice(dot)}`;
    },
    osloQueue: (rk) => {
      createdQueues.add(rk);
      return rk;
    },
    queue,
    config,
  };
}

/** What oslo.messaging's rabbit driver does to send a notification (impl_rabbit notify_send). */
async function publishLikeOslo(exchange: string, routingKey: string, body: Buffer): Promise<void> {
  await pub.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
  // _publish_and_creates_default_queue: a queue named after the routing key, bound with it.
  await pub.assertQueue(routingKey, { durable: false, autoDelete: false });
  await pub.bindQueue(routingKey, exchange, routingKey);
  pub.publish(exchange, routingKey, body, { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2, priority: 0 });
}

async function queueDepth(queue: string): Promise<number> {
  return (await pub.checkQueue(queue)).messageCount;
}

function notification(id: string, instance: string, eventType = "compute.instance.create.end"): Buffer {
  const inner = {
    message_id: id,
    publisher_id: "compute.test-host",
    event_type: eventType,
    priority: "INFO",
    timestamp: "2024-05-01 10:00:00.000001",
    payload: { instance_id: instance, tenant_id: "p1", display_name: `vm-${id}` },
    _context_request_id: `req-${id}`,
  };
  return Buffer.from(JSON.stringify({ "oslo.version": "2.0", "oslo.message": JSON.stringify(inner) }));
}

beforeAll(async () => {
  publisherModel = await connect(AMQP_URL);
  pub = await publisherModel.createConfirmChannel();
});

afterAll(async () => {
  for (const p of providers) await p.stop();
  const ch = await publisherModel.createChannel();
  for (const q of createdQueues) await ch.deleteQueue(q);
  for (const e of createdExchanges) await ch.deleteExchange(e);
  await publisherModel.close();
});

describe("OpenStackProvider on RabbitMQ", () => {
  it("turns every wire fixture, published as oslo.messaging does, into its CloudEvent and leaves oslo's own queues alone", async () => {
    const s = scenario("wire");
    const fixtures = wireFixtures();
    // The services run first: they declare their exchanges (durable=false) and default queues.
    for (const fx of fixtures) {
      await pub.assertExchange(s.exchange(fx.exchange), "topic", { durable: false, autoDelete: false });
      const rk = s.osloQueue(s.routingKey(fx.routingKey));
      await pub.assertQueue(rk, { durable: false, autoDelete: false });
      await pub.bindQueue(rk, s.exchange(fx.exchange), rk);
    }
    const sink = new MemorySink();
    const provider = newProvider(s.config);
    await provider.start(sink);
    expect(provider.health().ready).toBe(true);

    for (const fx of fixtures) await publishLikeOslo(s.exchange(fx.exchange), s.routingKey(fx.routingKey), fx.body);
    await pub.waitForConfirms();
    await waitFor("all fixtures at the sink", () => sink.events.length >= fixtures.length);

    // Ids repeat across two pairs of searchlight samples, so match on id and type.
    const got = new Map(sink.events.map((e) => [`${e.event.id} ${e.event.type}`, e]));
    for (const fx of fixtures) {
      const [type, source, subject, project] = EXPECTED[fx.file]!;
      const e = got.get(`${String(fx.inner["message_id"])} ${type}`);
      expect(e, fx.file).toBeDefined();
      expect(e!.event.source).toBe(source);
      expect(e!.event.subject).toBe(subject ?? undefined);
      expect(e!.partitionKey).toBe(subject ?? type);
      expect(e!.event.time).toBe(expectedTime(fx.inner["timestamp"] as string));
      expect(e!.event["openstackproject"]).toBe(project);
      expect(e!.event.data).toEqual(fx.inner["payload"]);
    }
    expect(sink.letters).toEqual([]);
    expect(provider.stats()).toMatchObject({ messagesIn: fixtures.length, decoded: fixtures.length, failed: 0 });
    expect(provider.health().lastMessageTime).toBeDefined();
    await provider.stop();

    // Everything was acked (nothing came back on close), and oslo's queues kept their copies.
    expect(await queueDepth(s.queue)).toBe(0);
    const perOsloQueue = new Map<string, number>();
    for (const fx of fixtures) {
      const rk = s.routingKey(fx.routingKey);
      perOsloQueue.set(rk, (perOsloQueue.get(rk) ?? 0) + 1);
    }
    expect(perOsloQueue.size).toBe(3); // notifications.info, versioned_notifications.info and .error
    for (const [rk, count] of perOsloQueue) expect(await queueDepth(rk)).toBe(count);
  });

  it("acks only after the sink resolves: a blocked sink holds at most `prefetch` messages, and they survive a stop", async () => {
    const s = scenario("slow", { KUMO_OPENSTACK_PREFETCH: "5" });
    const blocked = new MemorySink();
    blocked.hold();
    // The provider starts first: it declares the missing exchanges with oslo's flags, so the
    // services' own declarations (durable=false) still succeed afterwards.
    const first = newProvider(s.config, { stopGraceMs: 50 });
    await first.start(blocked);
    const ids = Array.from({ length: 30 }, (_, i) => `slow-${RUN}-${i}`);
    const rk = s.osloQueue(s.routingKey("notifications.info"));
    for (const id of ids) await publishLikeOslo(s.exchange("nova"), rk, notification(id, `vm-${id}`));
    await pub.waitForConfirms();

    await waitFor("5 deliveries in flight and 25 ready", async () => first.stats().messagesIn === 5 && (await queueDepth(s.queue)) === 25);
    await waitFor("lag reported", () => first.health().lag === 25);
    expect(blocked.events).toEqual([]);
    await first.stop();
    // Nothing was acked: all 30 are back in the queue.
    expect(await queueDepth(s.queue)).toBe(30);

    const sink = new MemorySink();
    const second = newProvider(s.config);
    await second.start(sink);
    await waitFor("all 30 delivered", () => new Set(sink.ids()).size === 30);
    expect(sink.ids()).toEqual(ids);
    await second.stop();
    expect(await queueDepth(s.queue)).toBe(0);
    blocked.release();
  });

  it("dead-letters malformed bodies with their reason and keeps consuming", async () => {
    const s = scenario("bad", { KUMO_OPENSTACK_MAX_PAYLOAD_BYTES: "4096" });
    const sink = new MemorySink();
    const provider = newProvider(s.config);
    await provider.start(sink);
    const ex = s.exchange("nova");
    const rk = s.osloQueue(s.routingKey("notifications.info"));
    const envelope = (inner: string): Buffer => Buffer.from(JSON.stringify({ "oslo.version": "2.0", "oslo.message": inner }));
    const bodies: Buffer[] = [
      notification(`ok1-${RUN}`, "a"),
      Buffer.from("this is not json"),
      notification(`ok2-${RUN}`, "b"),
      envelope('{"event_type": "compute.instance.create.end", "payl'),
      envelope(JSON.stringify({ publisher_id: "compute.h", payload: {} })),
      envelope(JSON.stringify({ event_type: "compute.instance.update", payload: { blob: "x".repeat(5000) } })),
      Buffer.from([0xff, 0xfe, 0x00, 0x81]),
      notification(`ok3-${RUN}`, "c"),
    ];
    for (const body of bodies) await publishLikeOslo(ex, rk, body);
    await pub.waitForConfirms();
    await waitFor("3 events and 5 dead letters", () => sink.events.length === 3 && sink.letters.length === 5);

    expect(sink.ids()).toEqual([`ok1-${RUN}`, `ok2-${RUN}`, `ok3-${RUN}`]);
    const reasons = sink.letters.map((l) => l.reason);
    expect(reasons[0]).toMatch(/^body is not JSON: /);
    expect(reasons[1]).toMatch(/^oslo\.message is not valid JSON: /);
    expect(reasons[2]).toBe("missing event_type");
    expect(reasons[3]).toMatch(/^payload too large: \d+ bytes > limit of 4096 bytes$/);
    expect(reasons[4]).toMatch(/^body is not JSON: /);
    for (const l of sink.letters) {
      expect(l.origin).toBe("provider/openstack");
      expect(l.meta).toMatchObject({ exchange: ex, routingKey: rk, queue: s.queue, contentType: "application/json" });
    }
    expect(sink.letters[0]).toMatchObject({ raw: "this is not json", rawEncoding: "utf8" });
    expect(sink.letters[3]!.meta).toMatchObject({ truncated: "true" });
    expect(sink.letters[4]).toMatchObject({ raw: Buffer.from([0xff, 0xfe, 0x00, 0x81]).toString("base64"), rawEncoding: "base64" });
    expect(provider.stats()).toMatchObject({ messagesIn: 8, decoded: 3, failed: 5 });
    await provider.stop();
    expect(await queueDepth(s.queue)).toBe(0);
  });

  it("requeues, in order, what the sink failed to take (bus down) and loses nothing", async () => {
    const s = scenario("busdown");
    const sink = new MemorySink();
    sink.failures = 3;
    const provider = newProvider(s.config);
    await provider.start(sink);
    const ids = Array.from({ length: 20 }, (_, i) => `busdown-${RUN}-${i}`);
    const rk = s.osloQueue(s.routingKey("notifications.info"));
    for (const id of ids) await publishLikeOslo(s.exchange("nova"), rk, notification(id, "one-vm", "compute.instance.update"));
    await pub.waitForConfirms();
    await waitFor("all 20 delivered", () => new Set(sink.ids()).size === 20);
    expect(provider.stats().sinkErrors).toBe(3);
    // Events of one resource stay in order through the failures.
    expect(sink.ids()).toEqual(ids);
    await provider.stop();
    expect(await queueDepth(s.queue)).toBe(0);
  });

  it("reconnects after the broker drops its connection mid-stream and loses no message", async () => {
    // Drop the connection from the server side when rabbitmqctl can; otherwise cut the TCP
    // connection in a proxy between the provider and the broker.
    const rabbitmqctl = process.env["KUMO_TEST_AMQP_DROP"] === "proxy" ? false : spawnSync("rabbitmqctl", ["list_connections", "-q", "pid"], { encoding: "utf8" }).status === 0;
    const proxy = rabbitmqctl ? undefined : await startProxy(new URL(AMQP_URL));
    const url = new URL(AMQP_URL);
    if (proxy !== undefined) {
      url.hostname = "127.0.0.1";
      url.port = String(proxy.port);
    }
    const s = scenario("drop", { KUMO_OPENSTACK_AMQP_URL: url.toString(), KUMO_OPENSTACK_PREFETCH: "20" });
    const connectionName = `kumo-openstack-test-${RUN}`;
    const sink = new MemorySink();
    const provider = newProvider(s.config, { connectionName });
    await provider.start(sink);

    const ids = Array.from({ length: 1500 }, (_, i) => `drop-${RUN}-${i}`);
    const rk = s.osloQueue(s.routingKey("notifications.info"));
    await pub.assertExchange(s.exchange("nova"), "topic", { durable: false, autoDelete: false });
    for (const id of ids) pub.publish(s.exchange("nova"), rk, notification(id, `vm-${id}`), { contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2 });
    await pub.waitForConfirms();

    await waitFor("some events before the drop", () => sink.events.length >= 100);
    expect(new Set(sink.ids()).size).toBeLessThan(ids.length);
    if (proxy !== undefined) {
      proxy.dropAll();
    } else {
      const list = spawnSync("rabbitmqctl", ["list_connections", "-q", "--no-table-headers", "pid", "client_properties"], { encoding: "utf8" });
      const line = list.stdout.split("\n").find((l) => l.includes(`"connection_name","${connectionName}"`));
      expect(line, "the provider's connection is listed by rabbitmqctl").toBeDefined();
      const closed = spawnSync("rabbitmqctl", ["close_connection", line!.split("\t")[0]!, "kumo test: connection drop"], { encoding: "utf8" });
      expect(closed.status, closed.stderr).toBe(0);
    }

    await waitFor("reconnected", () => provider.stats().reconnects >= 1);
    await waitFor("every message delivered", () => new Set(sink.ids()).size === ids.length, 60_000);
    const received = new Set(sink.ids());
    expect(ids.filter((id) => !received.has(id))).toEqual([]);
    expect(provider.health().ready).toBe(true);
    await provider.stop();
    expect(await queueDepth(s.queue)).toBe(0);
    proxy?.close();
  }, 90_000);

  it("reports not ready and keeps retrying while the broker is unreachable", async () => {
    const config = loadOpenStackConfig({
      KUMO_OPENSTACK_AMQP_URL: "amqp://guest:secret@127.0.0.1:1/",
      KUMO_OPENSTACK_QUEUE: `kumo-openstack-${RUN}-unreachable`,
      KUMO_OPENSTACK_RECONNECT_MIN_MS: "20",
      KUMO_OPENSTACK_RECONNECT_MAX_MS: "40",
    })!;
    const provider = newProvider(config);
    await provider.start(new MemorySink());
    const health = provider.health();
    expect(health.ready).toBe(false);
    expect(health.message).toMatch(/^not connected to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1\//);
    expect(health.message).not.toContain("secret");
    await provider.stop();
    expect(provider.health().message).toBe("stopped");
  });
});

describe("OpenStackProvider with the real oslo.messaging notifier", () => {
  const python = ["/usr/bin/python3", "python3"].find((p) => spawnSync(p, ["-c", "import oslo_messaging"]).status === 0);

  it("receives legacy and versioned notifications sent by oslo_messaging.Notifier (driver messagingv2)", async () => {
    expect(python, "oslo.messaging is needed for this test: apt-get install -y python3-oslo.messaging").toBeDefined();
    const s = scenario("oslo");
    const sink = new MemorySink();
    const provider = newProvider(s.config);
    await provider.start(sink);

    const legacy = readFixture("legacy/designate/nova/compute.instance.create.end.json") as { payload: { instance_id: string } };
    const versioned = readFixture("resolved/instance-delete-end.json") as { payload: { "nova_object.data": { uuid: string } } };
    const script = `
import json, sys
from oslo_config import cfg
import oslo_messaging as om
url, exchange, topic, vtopic, legacy, versioned = sys.argv[1:7]
om.set_transport_defaults(control_exchange=exchange)
conf = cfg.ConfigOpts()
conf([])
transport = om.get_notification_transport(conf, url=url)
ctx = {"request_id": "req-oslo-1", "project_id": "proj-oslo", "user_id": "user-oslo"}
om.Notifier(transport, publisher_id="compute.oslo-host", driver="messagingv2", topics=[topic]).info(ctx, "compute.instance.create.end", json.loads(legacy))
om.Notifier(transport, publisher_id="compute.oslo-host", driver="messagingv2", topics=[topic]).error(ctx, "compute.instance.create.error", json.loads(legacy))
om.Notifier(transport, publisher_id="nova-compute:oslo-host", driver="messagingv2", topics=[vtopic]).info(ctx, "instance.delete.end", json.loads(versioned))
transport.cleanup()
`;
    const topics = s.config.topics;
    const result = spawnSync(
      python!,
      ["-c", script, AMQP_URL.replace(/^amqp:/, "rabbit:"), s.exchange("nova"), topics[0]!, topics[1]!, JSON.stringify(legacy.payload), JSON.stringify(versioned.payload)],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(result.status, result.stderr).toBe(0);
    for (const rk of [`${topics[0]!}.info`, `${topics[0]!}.error`, `${topics[1]!}.info`]) s.osloQueue(rk);

    await waitFor("three notifications from oslo", () => sink.events.length === 3);
    const byType = new Map(sink.events.map((e) => [e.event.type, e.event]));
    const created = byType.get("org.openstack.nova.instance.create.end");
    expect(created).toMatchObject({
      source: "openstack/nova/oslo-host",
      subject: legacy.payload.instance_id,
      data: legacy.payload,
      openstackformat: "legacy",
      openstackpriority: "info",
      openstackeventtype: "compute.instance.create.end",
    });
    expect(created!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created!.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    expect(byType.get("org.openstack.nova.instance.create.error")).toMatchObject({ openstackpriority: "error" });
    expect(byType.get("org.openstack.nova.instance.delete.end")).toMatchObject({
      source: "openstack/nova/oslo-host",
      subject: versioned.payload["nova_object.data"].uuid,
      data: versioned.payload,
      openstackformat: "versioned",
    });
    await provider.stop();
    // oslo's own default queues got their copies too.
    expect(await queueDepth(`${topics[0]!}.info`)).toBe(1);
    expect(await queueDepth(`${topics[0]!}.error`)).toBe(1);
  }, 90_000);
});

/** A TCP proxy to the broker whose connections can be cut, standing in for a network drop. */
async function startProxy(target: URL): Promise<{ port: number; dropAll(): void; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port || 5672), target.hostname);
    for (const sock of [client, upstream]) {
      sockets.add(sock);
      sock.on("error", () => undefined);
      sock.on("close", () => {
        sockets.delete(sock);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
