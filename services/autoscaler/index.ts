// The autoscaler (Knative's KPA): decides how many instances each revision needs from the
// concurrency it observes. Config and decide are pure; the Collector is the loop that feeds them.
export { defaultAutoscalerConfig, loadAutoscalerConfig, panicWindowMs, resolveFunctionScaling, SAMPLE_INTERVAL_MS, type AutoscalerConfig } from "./config.ts";
export { ConcurrencyWindow, type ConcurrencySample } from "./window.ts";
export { decide, initialScalingState, type ConcurrencyReadings, type Decision, type ScalingState } from "./decide.ts";
export { Collector, type CollectorOptions } from "./collector.ts";
