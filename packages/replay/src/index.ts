export { sameValue } from './canonical.js';
export { describeCommands, describeEvent } from './describe.js';
export { diffRuns, forkOrigin, withOrigin, type RunCost, type RunDiff, type StepView } from './diff.js';
export { ReplayError, ReplayErrorCode } from './errors.js';
export {
  definitionHash,
  EXPORT_FORMAT,
  EXPORT_VERSION,
  readExport,
  writeExport,
  type ExportCheckpoint,
  type ExportedRun,
  type ExportHeader,
} from './export.js';
export { orderJournal, replayJournal, type CommandSummary, type IssuedCommand, type JournalEntry, type ReplayOptions, type ReplayResult, type ReplayStep } from './fold.js';
export { forkSeed, type ForkOptions } from './fork.js';
export { verifyReplay, type Verification } from './verify.js';
