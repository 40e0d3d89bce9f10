/** The OCI distribution client the bundle repository's registry backend is built on. */
export * from './artifact.js';
export * from './client.js';
export * from './credentials.js';
export * from './reference.js';
export { DEFAULT_RETRY, type RetryEvent, type RetryPolicy } from './transport.js';
