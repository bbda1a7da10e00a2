// A template event provider to copy when adding a new source (see CONTRIBUTING.md): it emits a
// `dev.kumo.template.tick` CloudEvent every `intervalMs`. A real provider keeps the same shape:
// decode the source message, append to the sink, acknowledge the source only after the append
// resolves, dead-letter what cannot be decoded, and report health.

import type { Clock, KumoCloudEvent } from "../../services/model/index.ts";
import { systemClock } from "../../services/model/index.ts";
import type { EventProvider, EventSink, ProviderHealth } from "../provider.ts";

/** Settings of the template provider. */
export interface TemplateProviderOptions {
  /** Time between ticks, ms. */
  intervalMs: number;
  clock?: Clock;
}

/** Emits one tick event per interval. */
export class TemplateProvider implements EventProvider {
  readonly name = "template";
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private cancel: (() => void) | undefined;
  private seq = 0;
  private lastError: string | undefined;
  private lastMessageTime: string | undefined;

  constructor(options: TemplateProviderOptions) {
    this.intervalMs = options.intervalMs;
    this.clock = options.clock ?? systemClock;
  }

  async start(sink: EventSink): Promise<void> {
    const tick = () => {
      this.cancel = this.clock.setTimer(tick, this.intervalMs);
      const at = new Date(this.clock.now()).toISOString();
      const event: KumoCloudEvent = { specversion: "1.0", id: `tick-${at}-${this.seq++}`, source: "kumo/template", type: "dev.kumo.template.tick", time: at, data: { seq: this.seq } };
      // A real source acknowledges its message here, after the durable append.
      sink.append([{ event, partitionKey: event.source }]).then(
        () => {
          this.lastError = undefined;
          this.lastMessageTime = at;
        },
        (err: unknown) => {
          this.lastError = err instanceof Error ? err.message : String(err);
        },
      );
    };
    this.cancel = this.clock.setTimer(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.cancel?.();
    this.cancel = undefined;
  }

  health(): ProviderHealth {
    const h: ProviderHealth = { ready: this.cancel !== undefined && this.lastError === undefined, message: this.lastError ?? `ticking every ${this.intervalMs} ms` };
    if (this.lastMessageTime !== undefined) h.lastMessageTime = this.lastMessageTime;
    return h;
  }
}
