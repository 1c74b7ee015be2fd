export { freePort } from './free-port.js';
export { recordingLogger, type LogEntry, type RecordingLogger } from './recording-logger.js';
export {
  startTestCluster,
  startTestServer,
  uniquePrefix,
  type TestCluster,
  type TestClusterOptions,
  type TestAuth,
  type TestServer,
  type TestServerOptions,
} from './servers.js';
export { runProcess, startProcess, type ProcessExit, type StartProcessOptions, type TestProcess } from './process.js';
export {
  createDeployment,
  inputMessage,
  serviceMain,
  startTestToolRunner,
  type Deployment,
  type ServiceName,
  type TestToolOptions,
  type TestToolRunner,
  type ToolBehaviour,
} from './deployment.js';
export { collect, type Collector } from './collect.js';
export { topLevelKeys } from './json-keys.js';
