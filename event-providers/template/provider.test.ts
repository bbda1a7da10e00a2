import { describe, expect, it } from "vitest";
import { FakeClock, type DeadLetter, type KumoCloudEvent } from "../../services/model/index.ts";
import { TemplateProvider } from "./provider.ts";

function memorySink(fail = false) {
  const events: KumoCloudEvent[] = [];
  const letters: DeadLetter[] = [];
  return {
    events,
    letters,
    async append(batch: readonly { event: KumoCloudEvent }[]) {
      if (fail) throw new Error("bus down");
      for (const b of batch) events.push(b.event);
    },
    async deadLetter(letter: DeadLetter) {
      letters.push(letter);
    },
  };
}

describe("TemplateProvider", () => {
  it("appends one tick per interval and reports healthy", async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const sink = memorySink();
    const p = new TemplateProvider({ intervalMs: 1000, clock });
    await p.start(sink);
    clock.advance(3000);
    await Promise.resolve();
    expect(sink.events.map((e) => e.type)).toEqual(["dev.kumo.template.tick", "dev.kumo.template.tick", "dev.kumo.template.tick"]);
    expect(sink.events[0]!.time).toBe("2026-01-01T00:00:01.000Z");
    expect(p.health().ready).toBe(true);
    await p.stop();
    clock.advance(5000);
    expect(sink.events).toHaveLength(3);
  });

  it("reports unhealthy while the bus rejects appends", async () => {
    const clock = new FakeClock(0);
    const p = new TemplateProvider({ intervalMs: 10, clock });
    await p.start(memorySink(true));
    clock.advance(10);
    await new Promise((r) => setTimeout(r, 0));
    expect(p.health()).toMatchObject({ ready: false, message: "bus down" });
    await p.stop();
  });
});
