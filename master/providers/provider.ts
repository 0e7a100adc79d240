/**
 * Where new hosts come from when every host is full (scale-out), and where
 * idle ones go (scale-in). A provider only starts and stops machines; the
 * manager on a new host registers itself in Redis, and the master allocates
 * to it once it does.
 */
export interface LaunchedHost {
  /** The id the host's manager will register under (OMEGA_HOST_ID). */
  hostId: string;
  /** The address it will be reached at, when known at launch. */
  address?: string;
}

export interface Provider {
  readonly name: string;
  /**
   * Start one new host. Resolves once the machine is asked for (not when its
   * manager is up); rejects with an OmegaError('NO_CAPACITY') when the
   * provider is at its maximum, or another coded error when the request fails.
   */
  launch(): Promise<LaunchedHost>;
  /** Stop and discard a host this provider launched. Idempotent. */
  terminate(hostId: string): Promise<void>;
  /** Whether this provider may terminate the host (it launched it; it is above the minimum). */
  owns(hostId: string): boolean | Promise<boolean>;
  /** Release what the provider holds (child processes, clients). */
  stop(): Promise<void>;
}
