export { startAdminServer, adminOptionsFor, type AdminServer, type AdminServerOptions } from './server.js';
export { RelayMetrics, routeLabel, type MetricsSource } from './metrics.js';
export { TrafficHistory, type MinuteBucket } from './history.js';
