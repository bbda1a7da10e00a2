// The OpenStack provider: consumes oslo.messaging notifications from its own durable RabbitMQ
// queue (bound to each service exchange with `<topic>.*`), turns them into CloudEvents and acks
// each message only after the sink made it durable. Reconnects with backoff; at-least-once.

import { readFileSync } from "node:fs";
import { connect, type Channel, type ChannelModel, type ConsumeMessage, type SocketOptions } from "amqplib";
import { systemClock, type Clock, type DeadLetter, type KumoCloudEvent } from "../../services/model/index.ts";
import type { EventProvider, EventSink, ProviderHealth } from "../provider.ts";
import { decodeNotification } from "./decode.ts";
import { redactedUrl, type OpenStackConfig } from "./config.ts";

/** Counters for metrics; the server copies them into prom-client. */
export interface OpenStackProviderStats {
  /** Deliveries received from RabbitMQ (redeliveries included). */
  messagesIn: number;
  /** Deliveries decoded into CloudEvents. */
  decoded: number;
  /** Deliveries that could not be decoded (dead-lettered). */
  failed: number;
  /** Times the sink rejected a batch, which was then requeued. */
  sinkErrors: number;
  /** Successful reconnections after a lost connection. */
  reconnects: number;
  /** Epoch ms of the last delivery, 0 if none yet. */
  lastMessageTime: number;
}

/** Where the provider reports what happens to it. */
export type OpenStackLog = (level: "info" | "warn" | "error", message: string) => void;

/** Optional collaborators of the provider. */
export interface OpenStackProviderOptions {
  clock?: Clock;
  log?: OpenStackLog;
  /** Shown as the AMQP connection name in RabbitMQ (default "kumo-openstack <queue>"). */
  connectionName?: string;
  /** How long stop() waits for an in-flight append before closing anyway, in ms (default 5000). */
  stopGraceMs?: number;
}

/** One connection's worth of state; replaced on every reconnect. */
interface Session {
  model: ChannelModel;
  channel: Channel;
  pending: ConsumeMessage[];
  pumping: Promise<void> | undefined;
  closed: boolean;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Consumes OpenStack notifications from RabbitMQ into the event bus. */
export class OpenStackProvider implements EventProvider {
  readonly name = "openstack";
  private readonly config: OpenStackConfig;
  private readonly clock: Clock;
  private readonly log: OpenStackLog;
  private readonly connectionName: string;
  private readonly stopGraceMs: number;
  private sink: EventSink | undefined;
  private session: Session | undefined;
  private stopping = false;
  private attempt = 0;
  private everConnected = false;
  private lastError = "";
  private lag: number | undefined;
  private cancelReconnect: (() => void) | undefined;
  private cancelLag: (() => void) | undefined;
  private connectedWaiters: (() => void)[] = [];
  private readonly counters: OpenStackProviderStats = { messagesIn: 0, decoded: 0, failed: 0, sinkErrors: 0, reconnects: 0, lastMessageTime: 0 };

  constructor(config: OpenStackConfig, options: OpenStackProviderOptions = {}) {
    this.config = config;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? ((level, message) => (level === "info" ? console.log : console.error)(`[openstack] ${message}`));
    this.connectionName = options.connectionName ?? `kumo-openstack ${config.queue}`;
    this.stopGraceMs = options.stopGraceMs ?? 5000;
  }

  /** Connects and starts consuming; if the broker is unreachable it keeps retrying in the background. */
  async start(sink: EventSink): Promise<void> {
    this.sink = sink;
    this.stopping = false;
    await this.connectOrRetry();
  }

  /** Resolves once the provider is connected and consuming. */
  whenConnected(): Promise<void> {
    if (this.session !== undefined && !this.session.closed) return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.push(resolve));
  }

  /** Stops consuming, lets an in-flight append finish (up to the grace period), closes the connection; unacked messages go back to the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.cancelReconnect?.();
    this.cancelLag?.();
    const session = this.session;
    this.session = undefined;
    if (session === undefined || session.closed) return;
    try {
      await session.channel.cancel(this.consumerTag);
    } catch {
      // The channel may already be gone; closing below is what matters.
    }
    if (session.pumping !== undefined) {
      let cancel = (): void => undefined;
      const grace = new Promise<void>((resolve) => {
        cancel = this.clock.setTimer(resolve, this.stopGraceMs);
      });
      await Promise.race([session.pumping, grace]);
      cancel();
    }
    session.closed = true;
    try {
      await session.model.close();
    } catch {
      // Already closed by the broker.
    }
  }

  /** Readiness and lag for /readyz. */
  health(): ProviderHealth {
    const where = redactedUrl(this.config.url);
    const connected = this.session !== undefined && !this.session.closed;
    const message = connected
      ? `consuming queue ${this.config.queue} on ${where} (${this.config.exchanges.length} exchanges: ${this.config.exchanges.join(", ")})`
      : this.stopping
        ? "stopped"
        : `not connected to ${where}${this.lastError === "" ? "" : `: ${this.lastError}`}; retrying`;
    return {
      ready: connected,
      message,
      ...(this.lag === undefined ? {} : { lag: this.lag }),
      ...(this.counters.lastMessageTime === 0 ? {} : { lastMessageTime: new Date(this.counters.lastMessageTime).toISOString() }),
    };
  }

  /** A snapshot of the counters. */
  stats(): OpenStackProviderStats {
    return { ...this.counters };
  }

  private get consumerTag(): string {
    return `kumo-openstack-${this.config.queue}`;
  }

  private async connectOrRetry(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.connectOnce();
    } catch (err) {
      this.lastError = errorText(err);
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopping) return;
    const delay = Math.min(this.config.reconnectMaxMs, this.config.reconnectMinMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    this.log("warn", `connection to ${redactedUrl(this.config.url)} unavailable (${this.lastError}); reconnecting in ${delay} ms`);
    this.cancelReconnect?.();
    this.cancelReconnect = this.clock.setTimer(() => {
      this.cancelReconnect = undefined;
      void this.connectOrRetry();
    }, delay);
  }

  private socketOptions(): SocketOptions {
    const { tls } = this.config;
    return {
      timeout: 10_000,
      // As py-amqp (oslo.messaging) does: without it, Nagle delays small acks and deliveries.
      noDelay: true,
      clientProperties: { connection_name: this.connectionName },
      ...(tls.caFile === undefined ? {} : { ca: [readFileSync(tls.caFile)] }),
      ...(tls.certFile === undefined ? {} : { cert: readFileSync(tls.certFile) }),
      ...(tls.keyFile === undefined ? {} : { key: readFileSync(tls.keyFile) }),
      ...(tls.verify ? {} : { rejectUnauthorized: false }),
    };
  }

  private async connectOnce(): Promise<void> {
    const url = new URL(this.config.url);
    if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(this.config.heartbeatSeconds));
    const model = await connect(url.toString(), this.socketOptions());
    let session: Session | undefined;
    model.on("error", (err: Error) => {
      this.lastError = err.message;
    });
    model.on("close", (err?: Error) => {
      if (err !== undefined) this.lastError = err.message;
      // During setup there is no session yet: connectOnce fails and its caller retries.
      if (session === undefined) return;
      session.closed = true;
      if (this.session === session) this.session = undefined;
      if (!this.stopping) this.scheduleReconnect();
    });
    try {
      await this.declareExchanges(model);
      const channel = await model.createChannel();
      channel.on("error", (err: Error) => {
        this.lastError = `channel: ${err.message}`;
      });
      // A channel closed under a live connection (e.g. a broker-side channel error) leaves
      // nothing consuming: close the connection so the reconnect path rebuilds everything.
      channel.on("close", () => {
        if (session !== undefined && !session.closed && !this.stopping) void model.close().catch(() => undefined);
      });
      const { queue, topics, exchanges } = this.config;
      const declared = await channel.assertQueue(queue, { durable: true, autoDelete: false, exclusive: false });
      for (const exchange of exchanges) {
        for (const topic of topics) await channel.bindQueue(queue, exchange, `${topic}.*`);
      }
      await channel.prefetch(this.config.prefetch, false);
      session = { model, channel, pending: [], pumping: undefined, closed: false };
      const current = session;
      this.session = current;
      this.lag = declared.messageCount;
      await channel.consume(queue, (msg) => this.onDelivery(current, msg), { noAck: false, consumerTag: this.consumerTag });
    } catch (err) {
      session = undefined;
      this.session = undefined;
      try {
        await model.close();
      } catch {
        // Closing a half-set-up connection may fail; the error that matters is rethrown.
      }
      throw err;
    }
    if (this.stopping) {
      await this.stop();
      return;
    }
    if (this.everConnected) this.counters.reconnects++;
    this.everConnected = true;
    this.attempt = 0;
    this.lastError = "";
    this.log("info", `consuming ${this.config.queue} on ${redactedUrl(this.config.url)}: ${this.config.exchanges.join(", ")} x ${this.config.topics.map((t) => `${t}.*`).join(", ")}`);
    this.scheduleLag();
    for (const resolve of this.connectedWaiters.splice(0)) resolve();
  }

  /**
   * Makes sure each exchange exists without changing it. Services declare their exchanges
   * (durable=false by default); declaring with other flags fails with PRECONDITION_FAILED, so
   * check passively first (a failed check closes its channel, hence a throwaway one) and only
   * declare a missing exchange, with oslo's defaults.
   */
  private async declareExchanges(model: ChannelModel): Promise<void> {
    for (const exchange of this.config.exchanges) {
      if (await this.exchangeExists(model, exchange)) continue;
      const channel = await model.createChannel();
      channel.on("error", () => undefined);
      try {
        await channel.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
        await channel.close();
      } catch (err) {
        // Someone declared it with other flags in between: it exists now, which is all we need.
        if (!(await this.exchangeExists(model, exchange))) throw err;
      }
    }
  }

  private async exchangeExists(model: ChannelModel, exchange: string): Promise<boolean> {
    const channel = await model.createChannel();
    channel.on("error", () => undefined);
    try {
      await channel.checkExchange(exchange);
      await channel.close();
      return true;
    } catch {
      return false;
    }
  }

  private scheduleLag(): void {
    this.cancelLag?.();
    this.cancelLag = this.clock.setTimer(() => {
      const session = this.session;
      if (session === undefined || session.closed) return;
      session.channel.checkQueue(this.config.queue).then(
        (q) => {
          this.lag = q.messageCount;
        },
        () => undefined,
      );
      this.scheduleLag();
    }, this.config.lagIntervalMs);
  }

  private onDelivery(session: Session, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer (queue deleted): rebuild from scratch.
      this.lastError = `consumer cancelled by the broker (queue ${this.config.queue} deleted?)`;
      void session.model.close().catch(() => undefined);
      return;
    }
    this.counters.messagesIn++;
    this.counters.lastMessageTime = this.clock.now();
    session.pending.push(msg);
    session.pumping ??= this.pump(session).finally(() => {
      session.pumping = undefined;
    });
  }

  /**
   * Hands deliveries to the sink in arrival order, in batches of whatever arrived meanwhile,
   * one batch at a time so one resource's events stay in order. Acks only after the sink
   * resolved; if it fails, waits and requeues everything unacked (RabbitMQ keeps the order).
   */
  private async pump(session: Session): Promise<void> {
    const sink = this.sink;
    if (sink === undefined) return;
    while (session.pending.length > 0 && !session.closed) {
      const batch = session.pending.splice(0);
      const events: { event: KumoCloudEvent; partitionKey: string }[] = [];
      const good: ConsumeMessage[] = [];
      const letters: { msg: ConsumeMessage; letter: DeadLetter }[] = [];
      for (const msg of batch) {
        const result = decodeNotification(msg.content, {
          contentType: msg.properties.contentType as string | undefined,
          contentEncoding: msg.properties.contentEncoding as string | undefined,
          headers: msg.properties.headers,
          exchange: msg.fields.exchange,
          routingKey: msg.fields.routingKey,
        }, { maxPayloadBytes: this.config.maxPayloadBytes });
        if (result.ok) {
          this.counters.decoded++;
          events.push({ event: result.event, partitionKey: result.partitionKey });
          good.push(msg);
        } else {
          this.counters.failed++;
          letters.push({ msg, letter: this.deadLetterFor(msg, result.reason) });
        }
      }
      try {
        await Promise.all(letters.map(({ letter }) => sink.deadLetter(letter)));
        if (events.length > 0) await sink.append(events);
        // Batches go one at a time in delivery order and every earlier one is acked, so one
        // "ack everything up to the last" acknowledges the whole batch in a single frame.
        const last = batch[batch.length - 1];
        if (last !== undefined) this.ack(session, last, true);
      } catch (err) {
        this.counters.sinkErrors++;
        this.log("warn", `event bus did not take ${batch.length} notification(s): ${errorText(err)}; requeueing in ${this.config.retryDelayMs} ms`);
        await new Promise<void>((resolve) => this.clock.setTimer(resolve, this.config.retryDelayMs));
        // Everything unacked on this channel (this batch and what arrived since) goes back in
        // its original order, to be redelivered once the bus recovers.
        session.pending.length = 0;
        if (!session.closed) {
          try {
            session.channel.nackAll(true);
          } catch {
            // Channel gone: RabbitMQ requeues the unacked messages itself.
          }
        }
      }
    }
  }

  private ack(session: Session, msg: ConsumeMessage, allUpTo = false): void {
    if (session.closed) return;
    try {
      session.channel.ack(msg, allUpTo);
    } catch {
      // The channel closed after the append: RabbitMQ redelivers, the id makes it a duplicate.
    }
  }

  private deadLetterFor(msg: ConsumeMessage, reason: string): DeadLetter {
    const limit = this.config.maxPayloadBytes;
    const body = msg.content.length > limit ? msg.content.subarray(0, limit) : msg.content;
    let raw: string;
    let rawEncoding: "utf8" | "base64";
    try {
      raw = utf8.decode(body);
      rawEncoding = "utf8";
    } catch {
      raw = body.toString("base64");
      rawEncoding = "base64";
    }
    const meta: Record<string, string> = {
      exchange: msg.fields.exchange,
      routingKey: msg.fields.routingKey,
      queue: this.config.queue,
      redelivered: String(msg.fields.redelivered),
      bodyBytes: String(msg.content.length),
    };
    if (body.length < msg.content.length) meta["truncated"] = "true";
    const props = msg.properties as { contentType?: unknown; contentEncoding?: unknown; messageId?: unknown; headers?: Record<string, unknown> };
    if (typeof props.contentType === "string") meta["contentType"] = props.contentType;
    if (typeof props.contentEncoding === "string") meta["contentEncoding"] = props.contentEncoding;
    if (typeof props.messageId === "string") meta["messageId"] = props.messageId;
    const compression = props.headers?.["compression"];
    if (typeof compression === "string") meta["compression"] = compression;
    return { origin: "provider/openstack", reason, raw, rawEncoding, meta, time: new Date(this.clock.now()).toISOString() };
  }
}
