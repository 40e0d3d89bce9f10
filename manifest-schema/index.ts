/** The contract between builder and installer. Imports nothing from either. */
export * from './atomic.js';
export * from './canonical.js';
export * from './chain.js';
export * from './documents.js';
export * from './envelope.js';
export * from './errors.js';
export * from './graph.js';
export * from './hashing.js';
export * from './keys.js';
export * from './metadata.js';
export * from './paths.js';
export * from './payload.js';
export * from './constants.js';
export * from './schemas.js';
export * from './trust.js';
export * from './validate.js';
export * from './versions.js';
