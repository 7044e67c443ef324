export * from './errors.js';
export * from './codes.js';
export * from './exit.js';
export * from './redact.js';
export * from './log.js';
export * from './fs.js';
export * from './tls.js';
