import { createTask } from "node-cron";
import { afterAll, describe, expect, it } from "vitest";
import { KumoError, setCronCheck, validateTriggerInput } from "../../services/model/index.ts";
import { CronSchedule, cronProblem, installCronCheck, instantOf, missedFires } from "./index.ts";

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

describe("CronSchedule.nextAfter", () => {
  it.each([
    ["every minute", "* * * * *", "UTC", "2025-03-01T10:15:30.500Z", "2025-03-01T10:16:00.000Z"],
    ["strictly after an exact fire time", "* * * * *", "UTC", "2025-03-01T10:16:00.000Z", "2025-03-01T10:17:00.000Z"],
    ["every second (6 fields)", "* * * * * *", "UTC", "2025-03-01T10:15:30.500Z", "2025-03-01T10:15:31.000Z"],
    ["every 15 seconds", "*/15 * * * * *", "UTC", "2025-03-01T10:15:46.000Z", "2025-03-01T10:16:00.000Z"],
    ["nightly at 02:00 UTC, same day", "0 2 * * *", "UTC", "2025-03-01T01:59:59.000Z", "2025-03-01T02:00:00.000Z"],
    ["nightly at 02:00 UTC, next day", "0 2 * * *", "UTC", "2025-03-01T02:00:00.000Z", "2025-03-02T02:00:00.000Z"],
    ["02:00 in Tokyo is 17:00 UTC the day before", "0 2 * * *", "Asia/Tokyo", "2025-03-01T00:00:00.000Z", "2025-03-01T17:00:00.000Z"],
    ["month rollover", "0 0 1 * *", "UTC", "2025-01-31T12:00:00.000Z", "2025-02-01T00:00:00.000Z"],
    ["leap day", "0 0 29 2 *", "UTC", "2025-03-01T00:00:00.000Z", "2028-02-29T00:00:00.000Z"],
    ["weekdays only (Saturday → Monday)", "30 9 * * mon-fri", "UTC", "2025-03-01T12:00:00.000Z", "2025-03-03T09:30:00.000Z"],
    ["Sunday as 7", "0 12 * * 7", "UTC", "2025-03-01T12:00:00.000Z", "2025-03-02T12:00:00.000Z"],
    ["year rollover", "0 0 1 1 *", "UTC", "2025-06-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"],
    ["last day of month (L) in a zone", "0 0 L * *", "Asia/Tokyo", "2025-02-01T00:00:00.000Z", "2025-02-27T15:00:00.000Z"],
    ["second Monday (1#2)", "0 8 * * 1#2", "UTC", "2025-03-01T00:00:00.000Z", "2025-03-10T08:00:00.000Z"],
    ["spring forward: 02:30 does not exist in New York on Mar 9", "30 2 * * *", "America/New_York", "2025-03-08T08:00:00.000Z", "2025-03-10T06:30:00.000Z"],
    // Like node-cron's scheduler, a wall time that occurs twice (fall back) fires once, the first time.
    ["fall back: 01:15 occurs twice in New York on Nov 2", "15 1 * * *", "America/New_York", "2025-11-02T05:15:00.000Z", "2025-11-03T06:15:00.000Z"],
    ["offset changes at DST in New York", "0 12 * * *", "America/New_York", "2025-03-08T18:00:00.000Z", "2025-03-09T16:00:00.000Z"],
  ])("%s", (_name, expression, timezone, after, expected) => {
    const schedule = new CronSchedule(expression, timezone);
    expect(iso(schedule.nextAfter(at(after)))).toBe(expected);
    schedule.dispose();
  });

  // node-cron's own matcher is the reference: walk a span minute by minute (second by second for
  // 6-field expressions) and compare every instant it matches with the chain of nextAfter.
  const reference: [string, string, string, number, number][] = [
    ["*/20 * * * *", "UTC", "2025-01-30T22:00:00Z", 3 * 86_400_000, 60_000],
    ["0 9-17/2 * * mon-fri", "Europe/Berlin", "2025-03-28T00:00:00Z", 5 * 86_400_000, 60_000],
    ["15 0,3,4 * * *", "America/New_York", "2025-11-01T00:00:00Z", 3 * 86_400_000, 60_000],
    ["0 0 L * *", "UTC", "2025-01-01T00:00:00Z", 100 * 86_400_000, 3_600_000],
    ["*/7 * * * * *", "Asia/Kolkata", "2025-05-05T10:00:00Z", 600_000, 1000],
  ];
  const tasks: { destroy(): unknown }[] = [];
  afterAll(() => {
    for (const t of tasks) void t.destroy();
  });
  it.each(reference)("agrees with node-cron's matcher for %s in %s", (expression, timezone, from, span, step) => {
    const task = createTask(expression, () => undefined, { timezone });
    tasks.push(task);
    const start = at(from);
    const expected: string[] = [];
    for (let t = start + step; t <= start + span; t += step) if (task.match(new Date(t))) expected.push(iso(t));
    const schedule = new CronSchedule(expression, timezone);
    const actual: string[] = [];
    for (let t = schedule.nextAfter(start); t <= start + span; t = schedule.nextAfter(t)) actual.push(iso(t));
    schedule.dispose();
    expect(actual.length).toBeGreaterThan(2);
    expect(actual).toEqual(expected);
  });
});

describe("instantOf", () => {
  it("maps wall time to an instant and reports DST gaps", () => {
    expect(iso(instantOf({ year: 2025, month: 7, day: 1, hour: 9, minute: 0, second: 0 }, "Europe/Berlin")!)).toBe("2025-07-01T07:00:00.000Z");
    expect(instantOf({ year: 2025, month: 3, day: 30, hour: 2, minute: 30, second: 0 }, "Europe/Berlin")).toBeUndefined();
  });
});

describe("missedFires", () => {
  it("counts the fires in (after, until] and finds the first and last", () => {
    const s = new CronSchedule("0 * * * *", "UTC");
    const m = missedFires(s, at("2025-03-01T10:00:00Z"), at("2025-03-01T13:30:00Z"));
    expect(m).toEqual({ count: 3, capped: false, first: at("2025-03-01T11:00:00Z"), last: at("2025-03-01T13:00:00Z") });
    expect(missedFires(s, at("2025-03-01T10:00:00Z"), at("2025-03-01T10:59:59Z")).count).toBe(0);
  });

  it("caps the count but still finds the latest missed time", () => {
    const s = new CronSchedule("* * * * * *", "UTC");
    const m = missedFires(s, at("2025-03-01T00:00:00Z"), at("2025-03-02T00:00:00.500Z"), 100);
    expect(m.capped).toBe(true);
    expect(m.count).toBe(100);
    expect(m.first).toBe(at("2025-03-01T00:00:01Z"));
    expect(m.last).toBe(at("2025-03-02T00:00:00Z"));
  });
});

describe("cron validation", () => {
  afterAll(() => setCronCheck(() => undefined));

  it.each([
    ["61 * * * *", "minute"],
    ["* * *", "expected 5 or 6 fields"],
    ["0 25 * * *", "hour"],
    ["every day", "expected 5 or 6 fields"],
    ["0 2 * * %", "illegal characters"],
  ])("explains why %s is rejected", (expression, mentions) => {
    const problem = cronProblem(expression, "UTC");
    expect(problem).toContain(mentions);
    expect(problem).toContain(`"${expression}"`);
  });

  it("accepts node-cron's expressions", () => {
    for (const e of ["0 2 * * *", "*/5 * * * * *", "@daily", "0 0 L * *", "0 9 * * mon-fri"]) expect(cronProblem(e, "UTC")).toBeUndefined();
  });

  it("makes trigger validation reject a bad schedule at create time, with the reason", () => {
    installCronCheck();
    const body = (schedule: string): unknown => ({
      metadata: { name: "nightly" },
      spec: { function: "report", source: { kind: "cron", schedule, timezone: "Asia/Tokyo" } },
    });
    expect(validateTriggerInput(body("0 2 * * *"), "default").spec.source).toMatchObject({ kind: "cron", schedule: "0 2 * * *" });
    let error: unknown;
    try {
      validateTriggerInput(body("0 99 * * *"), "default");
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(KumoError);
    expect((error as KumoError).details).toContainEqual(expect.objectContaining({ field: "spec.source.schedule", message: expect.stringContaining("hour") as unknown }));
  });
});
