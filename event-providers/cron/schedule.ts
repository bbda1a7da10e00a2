// Cron expressions: node-cron's grammar and validation, plus "the next fire time after t" in a
// time zone, which node-cron does not expose for an arbitrary t. Used to find the fires a
// trigger missed while Kumo was down.

import { createTask, validateDetailed, type ScheduledTask } from "node-cron";
import { KumoError, isTimeZone, setCronCheck } from "../../services/model/index.ts";

/** The problem with a cron expression in a time zone, or undefined when node-cron accepts it. */
export function cronProblem(expression: string, timezone: string): string | undefined {
  if (!isTimeZone(timezone)) return `"${timezone}" is not an IANA time zone: use e.g. "UTC" or "Asia/Tokyo"`;
  const result = validateDetailed(expression);
  if (result.valid) return undefined;
  const why = result.errors.map((e) => (e.field === "expression" ? e.message : `${e.field} "${e.value ?? ""}" is out of range or malformed`)).join("; ");
  return `"${expression}" is not a cron expression (${why}): use 5 fields "minute hour day-of-month month day-of-week", or 6 with seconds first, e.g. "0 2 * * *"`;
}

/** Makes trigger validation reject bad cron expressions (call once at startup, in every process that validates triggers). */
export function installCronCheck(): void {
  setCronCheck(cronProblem);
}

interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** The wall-clock time of an instant in a time zone. */
export function wallTime(ms: number, timezone: string): WallTime {
  const out: WallTime = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(timezone).formatToParts(new Date(ms))) {
    if (part.type in out) out[part.type as keyof WallTime] = Number(part.value);
  }
  return out;
}

function sameWall(a: WallTime, b: WallTime): boolean {
  return a.year === b.year && a.month === b.month && a.day === b.day && a.hour === b.hour && a.minute === b.minute && a.second === b.second;
}

/** The instant a wall-clock time names in a time zone, or undefined when it does not exist (a DST gap). */
export function instantOf(wall: WallTime, timezone: string): number | undefined {
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  const offsetAt = (ms: number): number => {
    const w = wallTime(ms, timezone);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(ms / 1000) * 1000;
  };
  let ms = asUtc - offsetAt(asUtc);
  const second = offsetAt(ms);
  if (asUtc - second !== ms) ms = asUtc - second;
  return sameWall(wallTime(ms, timezone), wall) ? ms : undefined;
}

const MAX_DAYS = 366 * 30;

/** A parsed cron expression in a time zone; `nextAfter` finds fire times. */
export class CronSchedule {
  readonly expression: string;
  readonly timezone: string;
  private readonly seconds: number[];
  private readonly minutes: number[];
  private readonly hours: number[];
  private readonly months: Set<number>;
  private readonly daysOfMonth: Set<number> | undefined;
  private readonly daysOfWeek: Set<number> | undefined;
  /** node-cron's matcher, only for day tokens like L, W and # that it alone interprets. */
  private matcher: ScheduledTask | undefined;
  private readonly special: boolean;

  /** Parses; throws KUMO_E_VALIDATION with the reason if node-cron rejects the expression. */
  constructor(expression: string, timezone = "UTC") {
    const problem = cronProblem(expression, timezone);
    const fields = problem === undefined ? validateDetailed(expression).fields : undefined;
    if (fields === undefined) throw new KumoError("KUMO_E_VALIDATION", problem ?? `"${expression}" is not a cron expression`);
    this.expression = expression;
    this.timezone = timezone;
    const sorted = (values: readonly number[]): number[] => [...new Set(values)].sort((a, b) => a - b);
    this.seconds = sorted(fields.second);
    this.minutes = sorted(fields.minute);
    this.hours = sorted(fields.hour);
    this.months = new Set(fields.month);
    const numeric = (values: readonly (number | string)[]): values is number[] => values.every((v) => typeof v === "number");
    this.daysOfMonth = numeric(fields.dayOfMonth) ? new Set(fields.dayOfMonth) : undefined;
    this.daysOfWeek = numeric(fields.dayOfWeek) ? new Set(fields.dayOfWeek.map((d) => d % 7)) : undefined;
    this.special = this.daysOfMonth === undefined || this.daysOfWeek === undefined;
  }

  /** The first fire time strictly after `afterMs` (epoch ms, whole seconds). */
  nextAfter(afterMs: number): number {
    const base = Math.floor(afterMs / 1000) * 1000;
    const start = wallTime(base, this.timezone);
    let date = new Date(Date.UTC(start.year, start.month - 1, start.day));
    for (let i = 0; i < MAX_DAYS; i++, date = new Date(date.getTime() + 86_400_000)) {
      const year = date.getUTCFullYear();
      const month = date.getUTCMonth() + 1;
      const day = date.getUTCDate();
      if (!this.months.has(month) || !this.dayMatches(year, month, day, date.getUTCDay())) continue;
      const found = this.firstOnDay(year, month, day, i === 0 ? start : undefined, base);
      if (found !== undefined) return found;
    }
    throw new KumoError("KUMO_E_INTERNAL", `cron "${this.expression}" has no fire time within ${MAX_DAYS / 366} years`);
  }

  /** Releases node-cron's matcher, if one was made. */
  dispose(): void {
    void this.matcher?.destroy();
    this.matcher = undefined;
  }

  private dayMatches(year: number, month: number, day: number, weekday: number): boolean {
    if (this.daysOfMonth !== undefined && !this.daysOfMonth.has(day)) return false;
    if (this.daysOfWeek !== undefined && !this.daysOfWeek.has(weekday)) return false;
    if (!this.special) return true;
    // node-cron decides tokens such as L, 15W or 5#2; any fire time of the day shows the verdict.
    for (const hour of this.hours) {
      for (const minute of this.minutes) {
        for (const second of this.seconds) {
          const ms = instantOf({ year, month, day, hour, minute, second }, this.timezone);
          if (ms === undefined) continue;
          this.matcher ??= createTask(this.expression, () => undefined, { timezone: this.timezone });
          return this.matcher.match(new Date(ms));
        }
      }
    }
    return false;
  }

  private firstOnDay(year: number, month: number, day: number, lower: WallTime | undefined, base: number): number | undefined {
    for (const hour of this.hours) {
      if (lower !== undefined && hour < lower.hour) continue;
      for (const minute of this.minutes) {
        if (lower !== undefined && hour === lower.hour && minute < lower.minute) continue;
        for (const second of this.seconds) {
          if (lower !== undefined && hour === lower.hour && minute === lower.minute && second <= lower.second) continue;
          const ms = instantOf({ year, month, day, hour, minute, second }, this.timezone);
          if (ms !== undefined && ms > base) return ms;
        }
      }
    }
    return undefined;
  }
}

/** The fires of a schedule in (afterMs, untilMs]. */
export interface MissedFires {
  /** How many (at least this many when `capped`). */
  count: number;
  capped: boolean;
  first: number | undefined;
  last: number | undefined;
}

/** Finds the fire times in (afterMs, untilMs], counting at most `cap` of them but always finding the last. */
export function missedFires(schedule: CronSchedule, afterMs: number, untilMs: number, cap = 1000): MissedFires {
  const out: MissedFires = { count: 0, capped: false, first: undefined, last: undefined };
  let t = afterMs;
  for (;;) {
    const next = schedule.nextAfter(t);
    if (next > untilMs) return out;
    out.first ??= next;
    out.last = next;
    out.count += 1;
    t = next;
    if (out.count >= cap) break;
  }
  out.capped = true;
  // Too many to walk: look back from untilMs over growing windows for the latest one.
  for (const window of [60_000, 3_600_000, 86_400_000, 31 * 86_400_000]) {
    let from = Math.max(t, untilMs - window);
    let last: number | undefined;
    let walked = 0;
    for (;;) {
      const next = schedule.nextAfter(from);
      if (next > untilMs || walked > cap) break;
      last = next;
      from = next;
      walked += 1;
    }
    if (walked <= cap && last !== undefined) {
      out.last = last;
      return out;
    }
  }
  return out;
}
