// The public door of @errand/runtime: what a process needs to run hosts and collect finished
// agents. The parts a host is built from (the step executor, intake, timers, the catalog reader)
// are for this package's tests and for benchmarks: `@errand/runtime/internal`.
export { CRASH_POINTS, isCrashPoint, type CrashHook, type CrashPoint } from './crash-points.js';
export { defaultHostSettings, startHost, type Host, type HostOptions, type HostSettings } from './host.js';
export { readCatalog, type LiveTool } from './catalog.js';
export { collectGarbage, DEFAULT_RETENTION_MS, DURATION_FORMAT, parseDuration, type GcOptions, type GcProgress, type GcResult } from './retention.js';
