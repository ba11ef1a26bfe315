/** The policy engine: pure (no I/O, no clock, no node: imports); used by the coordinator and the signer nodes. */
export * from './document.js';
export * from './admin.js';
export * from './address.js';
export * from './eth-tx.js';
export * from './intent.js';
export * from './evaluate.js';
export * from './approvals.js';
export { canonicalJson } from './canonical.js';
export * from './payload.js';
export * from './operations.js';
