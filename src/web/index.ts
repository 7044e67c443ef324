export { startOpsServer, type OpsServerOptions } from './server.js';
export { RelayMetrics } from './metrics.js';
