// Step load: how the autoscaler follows a jump in traffic. `kumo server` runs with shortened
// autoscaler windows; a function that awaits ~20 ms (concurrency 10 per instance) gets 1, then
// 100, then 1 requests in flight, kept exact by a closed-loop load generator in this process
// (wrk cannot change connections mid-run). Every second: instances (actual, desired), panic,
// req/s and p50/p99 of the requests that finished in it. Writes docs/benchmarks/stepload.csv and
// docs/benchmarks/stepload.svg and prints a markdown summary.
//
//   node_modules/.bin/node --no-node-snapshot --disable-warning=ExperimentalWarning bench/stepload.ts \
//     [--warm 15] [--high 30] [--low 30] [--idle 0] [--low-connections 1] [--high-connections 100] [--sleep-ms 20]

import { Agent, request } from "node:http";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { lineChart } from "./plot.ts";
import { deploy, machine, percentile, repoRoot, saveResult, startChild, type Child } from "./lib.ts";

const { values } = parseArgs({
  options: {
    warm: { type: "string", default: "15" },
    high: { type: "string", default: "30" },
    low: { type: "string", default: "30" },
    idle: { type: "string", default: "0" },
    "low-connections": { type: "string", default: "1" },
    "high-connections": { type: "string", default: "100" },
    "sleep-ms": { type: "string", default: "20" },
    concurrency: { type: "string", default: "10" },
    target: { type: "string", default: "10" },
    "max-scale": { type: "string", default: "20" },
    "stable-window-ms": { type: "string", default: "20000" },
    "grace-ms": { type: "string", default: "5000" },
  },
});
const low = Number(values["low-connections"]);
const high = Number(values["high-connections"]);
/** The load profile: [seconds, connections] in order. */
const phases: { name: string; seconds: number; connections: number }[] = [
  { name: "warm", seconds: Number(values.warm), connections: low },
  { name: "step up", seconds: Number(values.high), connections: high },
  { name: "step down", seconds: Number(values.low), connections: low },
  { name: "idle", seconds: Number(values.idle), connections: 0 },
].filter((p) => p.seconds > 0);
const totalSeconds = phases.reduce((a, p) => a + p.seconds, 0);
const FN = "step";

const HANDLER = `// Waits ~${values["sleep-ms"]} ms, like a function that calls a database: its concurrency matters, not its CPU.
export default async () => {
  await new Promise((r) => setTimeout(r, ${Number(values["sleep-ms"])}));
  return { ok: true };
};
`;

// Everything to undo, whatever happens.
let server: Child | undefined;
const tempDirs: string[] = [];
/** The load generator while it runs; stopped first, so the server can drain. */
let activeLoad: { set(connections: number): void; close(): void } | undefined;
async function cleanup(): Promise<void> {
  activeLoad?.set(0);
  activeLoad?.close();
  activeLoad = undefined;
  const s = server;
  server = undefined;
  // SIGTERM drains; stop() kills a server that has not exited after 15 s, so the run still ends.
  await s?.stop();
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

/** Per-request records, parallel arrays (hundreds of thousands of them). */
const doneAt: number[] = [];
const latency: number[] = [];
let errors = 0;

/** One GET over a keep-alive agent; resolves with the status (0 on a socket error). */
function get(agent: Agent, url: URL): Promise<number> {
  return new Promise((resolveGet) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.once("end", () => resolveGet(res.statusCode ?? 0));
      res.once("error", () => resolveGet(0));
    });
    req.once("error", () => resolveGet(0));
    req.end();
  });
}

/** A closed-loop load generator: exactly `target` requests in flight, changeable at any time. */
class ClosedLoop {
  private target = 0;
  private running = 0;
  private readonly url: URL;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 10_000 });
  private readonly t0: number;
  private readonly idle: (() => void)[] = [];

  constructor(url: URL, t0: number) {
    this.url = url;
    this.t0 = t0;
  }

  set(connections: number): void {
    this.target = connections;
    while (this.running < this.target) void this.worker(this.running++);
  }

  /** Resolves when every worker has stopped (after set(0)). */
  stopped(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((r) => this.idle.push(r));
  }

  close(): void {
    this.agent.destroy();
  }

  private async worker(slot: number): Promise<void> {
    // Slots above the target finish their request and leave: the count in flight drops exactly.
    while (slot < this.target) {
      const start = performance.now();
      const status = await get(this.agent, this.url);
      const end = performance.now();
      if (status === 200) {
        doneAt.push(end - this.t0);
        latency.push(end - start);
      } else errors++;
    }
    this.running--;
    if (this.running === 0) for (const r of this.idle.splice(0)) r();
  }
}

/** Sums a metric's samples whose labels include function="step". */
function metricSum(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") || !line.includes(`function="${FN}"`)) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) {
      sum += v;
      seen = true;
    }
  }
  return seen ? sum : 0;
}

interface Second {
  t: number;
  instances: number;
  /** Instance starts so far (a counter): churn shows as starts beyond the instance count. */
  coldStarts: number;
  desired: number;
  panic: number;
}

try {
  const dataDir = await mkdtemp(join(tmpdir(), "kumo-bench-step-"));
  tempDirs.push(dataDir);
  server = await startChild(join(repoRoot, "bin/kumo"), ["server", "--port", "0", "--data-dir", dataDir], /(http:\/\/127\.0\.0\.1:\d+)/, (u) => u, {
    KUMO_AUTOSCALER_STABLE_WINDOW_MS: values["stable-window-ms"],
    KUMO_AUTOSCALER_SCALE_TO_ZERO_GRACE_MS: values["grace-ms"],
    KUMO_AUTOSCALER_TICK_INTERVAL_MS: "1000",
  });
  const base = server.url;
  const fnDir = await mkdtemp(join(tmpdir(), "kumo-bench-step-fn-"));
  tempDirs.push(fnDir);
  await writeFile(join(fnDir, "index.js"), HANDLER);
  await deploy(base, FN, fnDir, { concurrency: Number(values.concurrency), scale: { target: Number(values.target), max: Number(values["max-scale"]) } });

  const seconds: Second[] = [];
  const t0 = performance.now();
  const load = new ClosedLoop(new URL(`${base}/default/${FN}`), t0);
  activeLoad = load;
  const metricsAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  let scraping = false;
  const scrape = async (t: number): Promise<void> => {
    if (scraping) return; // a slow scrape under load: skip a second rather than pile up
    scraping = true;
    try {
      const text = await new Promise<string>((resolveText, reject) => {
        const req = request(new URL(`${base}/metrics`), { agent: metricsAgent }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.once("end", () => resolveText(body));
        });
        req.once("error", reject);
        req.end();
      });
      seconds.push({ t, instances: metricSum(text, "kumo_instances"), coldStarts: metricSum(text, "kumo_cold_starts_total"), desired: metricSum(text, "kumo_autoscaler_desired_instances"), panic: metricSum(text, "kumo_autoscaler_panic") });
    } finally {
      scraping = false;
    }
  };
  let tick = 0;
  const ticker = setInterval(() => void scrape(++tick).catch(() => undefined), 1000);
  const phaseStart: number[] = [];
  try {
    await scrape(0);
    for (const phase of phases) {
      phaseStart.push((performance.now() - t0) / 1000);
      load.set(phase.connections);
      await new Promise((r) => setTimeout(r, phase.seconds * 1000));
    }
    load.set(0);
    await load.stopped();
  } finally {
    clearInterval(ticker);
    load.close();
    activeLoad = undefined;
    metricsAgent.destroy();
  }

  // Per second: finished requests, their p50/p99; joined with the metrics sampled at its end.
  const buckets = new Map<number, number[]>();
  for (let i = 0; i < doneAt.length; i++) {
    const s = Math.floor(doneAt[i]! / 1000);
    let b = buckets.get(s);
    if (b === undefined) buckets.set(s, (b = []));
    b.push(latency[i]!);
  }
  // The connections of second t are those of the phase running during [t-1, t).
  const connectionsAt = (sec: number): number => {
    let c = 0;
    phases.forEach((p, i) => {
      if (sec >= phaseStart[i]!) c = p.connections;
    });
    return c;
  };
  const rows = seconds
    .filter((s) => s.t >= 1 && s.t <= totalSeconds)
    .map((s) => {
      const b = buckets.get(s.t - 1) ?? [];
      return { ...s, connections: connectionsAt(s.t - 0.5), rps: b.length, p50: b.length > 0 ? percentile(b, 50) : NaN, p99: b.length > 0 ? percentile(b, 99) : NaN };
    });
  const csv = ["t,connections,instances,desired,panic,rps,p50_ms,p99_ms", ...rows.map((r) => [r.t, r.connections, r.instances, r.desired, r.panic, r.rps, r.p50.toFixed(2), r.p99.toFixed(2)].join(","))].join("\n") + "\n";
  const docs = join(repoRoot, "docs/benchmarks");
  await mkdir(docs, { recursive: true });
  await writeFile(join(docs, "stepload.csv"), csv);
  const svg = lineChart({
    title: `Step load ${low} → ${high} → ${low} in-flight requests (${values["sleep-ms"]} ms handler, concurrency ${values.concurrency}/instance)`,
    xLabel: "time (s)",
    leftLabel: "instances",
    rightLabel: "p99 latency (ms)",
    series: [
      // Connections in instance units, so the line shows how many instances the load needs.
      { name: `connections ÷ ${values.concurrency}`, points: rows.map((r) => [r.t, r.connections / Number(values.concurrency)] as const), step: true, color: "#888", dashed: true },
      { name: "instances", points: rows.map((r) => [r.t, r.instances] as const), step: true, color: "#1f77b4" },
      { name: "desired", points: rows.map((r) => [r.t, r.desired] as const), step: true, color: "#2ca02c", dashed: true },
      { name: "p99 ms", points: rows.map((r) => [r.t, r.p99] as const), axis: "right", color: "#d62728" },
    ],
  });
  await writeFile(join(docs, "stepload.svg"), svg);

  // Summary per phase.
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "-");
  console.log(`\n## Step load (${machine()}; stable window ${values["stable-window-ms"]} ms, panic window 10%, tick 1 s, grace ${values["grace-ms"]} ms)\n`);
  console.log("| phase | seconds | connections | requests | req/s | p50 ms | p99 ms | max instances | instances at end | panic seconds |");
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  phases.forEach((p, i) => {
    const from = phaseStart[i]! * 1000;
    const to = from + p.seconds * 1000;
    const lat: number[] = [];
    for (let j = 0; j < doneAt.length; j++) if (doneAt[j]! >= from && doneAt[j]! < to) lat.push(latency[j]!);
    const inPhase = rows.filter((r) => r.t > from / 1000 && r.t <= to / 1000 + 0.5);
    const last = inPhase[inPhase.length - 1];
    console.log(
      `| ${p.name} | ${p.seconds} | ${p.connections} | ${lat.length} | ${f(lat.length / p.seconds)} | ${f(percentile(lat, 50))} | ${f(percentile(lat, 99))} | ${Math.max(0, ...inPhase.map((r) => r.instances))} | ${last?.instances ?? "-"} | ${inPhase.filter((r) => r.panic > 0).length} |`,
    );
  });
  // Reaction times: from the step up until the instances reach the count the load needs, and
  // from the step down until they are back where they started.
  const upAt = phaseStart[1];
  const downAt = phaseStart[2];
  const needed = Math.ceil(high / Number(values.concurrency));
  const firstAt = (from: number | undefined, ok: (r: (typeof rows)[number]) => boolean) => (from === undefined ? undefined : rows.find((r) => r.t > from && ok(r))?.t);
  const scaledUp = firstAt(upAt, (r) => r.instances >= needed);
  const before = rows.filter((r) => upAt !== undefined && r.t <= upAt).at(-1)?.instances ?? 1;
  const scaledDown = firstAt(downAt, (r) => r.instances <= Math.max(1, before));
  console.log(
    `\nscale up to ${needed} instances: ${scaledUp !== undefined && upAt !== undefined ? `${(scaledUp - upAt).toFixed(1)} s after the step` : "not reached"}; ` +
      `back to ${Math.max(1, before)}: ${scaledDown !== undefined && downAt !== undefined ? `${(scaledDown - downAt).toFixed(1)} s after the step down` : "not within the run"}; ` +
      `instance starts during the run: ${(rows.at(-1)?.coldStarts ?? 0) - (seconds[0]?.coldStarts ?? 0)}; failed requests: ${errors}; metric samples: ${rows.length}/${totalSeconds}`,
  );
  const file = await saveResult("stepload", { machine: machine(), options: values, phases, rows, errors });
  console.log(`(docs/benchmarks/stepload.csv, docs/benchmarks/stepload.svg, ${file})`);
} finally {
  await cleanup();
}
