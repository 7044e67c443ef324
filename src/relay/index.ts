export { RelayService, type RelayServiceOptions } from './service.js';
export { Router, type RelayRoute } from './routing.js';
export { DeliveryEngine, type DeliveryEvent } from './delivery.js';
export type { InboundServer } from './inbound.js';
export { InboundThread } from './inbound-thread.js';
export { decide, backoffMs, type TroubleAction } from './trouble.js';
export { hashPassword, verifyPassword, addressProblem } from './policy.js';
export { buildDsn } from './dsn.js';
