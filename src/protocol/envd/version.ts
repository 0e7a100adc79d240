/**
 * What the E2B side of Omega says about its agent, shared by the worker that
 * serves it and the master that names it in its E2B API. Imports nothing.
 */

/** The port E2B clients reach the agent on: `49983-<id>.<zone>`. */
export const ENVD_PORT = 49983;

/**
 * The newest envd version whose features the worker's agent serves; the SDK
 * turns features on by it (docs/e2b.md lists them). 0.5.7 is octet-stream
 * uploads; 0.6.2 adds file metadata (extended attributes), which Omega does
 * not keep.
 */
export const ENVD_VERSION = '0.5.7';
