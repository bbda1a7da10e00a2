// The cron event provider: fires cron Triggers on their schedules (node-cron, time zones), and
// the cron expression check trigger validation uses.
export { CronProvider, createCronMetrics, cronFiredEvent, nodeCronScheduler } from "./provider.ts";
export type { CronLog, CronMetrics, CronProviderOptions, CronScheduler } from "./provider.ts";
export { CronSchedule, cronProblem, installCronCheck, instantOf, missedFires, wallTime } from "./schedule.ts";
export type { MissedFires } from "./schedule.ts";
