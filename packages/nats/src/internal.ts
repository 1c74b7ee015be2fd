// Everything @errand/nats is built from, for its own tests. Not a stable API: other packages use
// the public door (index.ts).
export * from './index.js';
export { parseServerVersion, serverFeatures, warnAboutDurability } from './features.js';
export { defaultConnectOptions } from './connect.js';
export { bucketStreamConfig, objectStoreStreamConfig, streamConfig } from './provision.js';
export { defaultNatsServerOptions } from './nats-server.js';
export { credsInfo } from './identity.js';
export { deadMessageOf } from './dead-letter.js';
export { defaultConsumeMessagesOptions } from './consume.js';
