// A revision's recent concurrency: one sample per second of in-flight requests, kept only as
// long as the longest window that reads them, so memory stays bounded.

/** In-flight requests of one revision at one moment. */
export interface ConcurrencySample {
  /** Epoch ms. */
  readonly at: number;
  readonly concurrency: number;
}

/** Samples of one revision over the last `retainMs`, with averages over any shorter span. */
export class ConcurrencyWindow {
  readonly retainMs: number;
  private samples: ConcurrencySample[] = [];
  private lastActive: number | undefined;

  /** `retainMs` is the longest span averaged (the stable window). */
  constructor(retainMs: number) {
    this.retainMs = retainMs;
  }

  /** Adds a sample and drops those too old for any window. Samples must arrive in time order. */
  record(sample: ConcurrencySample): void {
    this.samples.push(sample);
    if (sample.concurrency > 0) this.lastActive = sample.at;
    const oldest = sample.at - this.retainMs;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop]!.at <= oldest) drop++;
    if (drop > 0) this.samples.splice(0, drop);
  }

  /** Mean concurrency of the samples in (now - spanMs, now]; 0 when there are none. */
  average(now: number, spanMs: number): number {
    const from = now - spanMs;
    let sum = 0;
    let n = 0;
    for (const s of this.samples) {
      if (s.at > from && s.at <= now) {
        sum += s.concurrency;
        n++;
      }
    }
    return n === 0 ? 0 : sum / n;
  }

  /** When a sample last showed traffic, even if that sample has since been dropped. */
  lastActiveAt(): number | undefined {
    return this.lastActive;
  }

  /** How many samples are held. */
  get size(): number {
    return this.samples.length;
  }
}
