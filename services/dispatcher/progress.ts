// Offset bookkeeping for at-least-once delivery: a partition's position may be committed only up
// to the first record that is not yet fully handled (delivered or dead-lettered for every trigger).

interface Slot {
  offset: bigint;
  remaining: number;
}

/** Tracks the records of one partition in flight and the committable position. */
export class PartitionProgress {
  private readonly queue: Slot[] = [];
  private head = 0;
  private readonly byOffset = new Map<string, Slot>();
  private committable: bigint | undefined;

  /** Records not yet completed (including completed ones waiting behind an earlier record). */
  get inFlight(): number {
    return this.queue.length - this.head;
  }

  /** True when this offset is already tracked (a redelivered record). */
  has(offset: string): boolean {
    return this.byOffset.has(offset);
  }

  /**
   * Starts tracking a record that needs `parts` completions; records are added in offset order.
   * Returns the new committable position if a record with no parts advanced it.
   */
  add(offset: string, parts: number): string | undefined {
    const slot: Slot = { offset: BigInt(offset), remaining: parts };
    this.queue.push(slot);
    this.byOffset.set(offset, slot);
    return parts <= 0 ? this.advance() : undefined;
  }

  /** Marks one part of a record done; returns the next offset to commit when the contiguous prefix grew. */
  complete(offset: string): string | undefined {
    const slot = this.byOffset.get(offset);
    if (slot === undefined || slot.remaining <= 0) return undefined;
    slot.remaining -= 1;
    return slot.remaining === 0 ? this.advance() : undefined;
  }

  /** The last position returned, if any. */
  get position(): string | undefined {
    return this.committable === undefined ? undefined : String(this.committable);
  }

  private advance(): string | undefined {
    let moved = false;
    while (this.head < this.queue.length) {
      const slot = this.queue[this.head];
      if (slot === undefined || slot.remaining > 0) break;
      this.byOffset.delete(String(slot.offset));
      this.committable = slot.offset + 1n;
      this.head += 1;
      moved = true;
    }
    // Drop the consumed prefix now and then rather than shifting on every completion.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return moved ? this.position : undefined;
  }
}
