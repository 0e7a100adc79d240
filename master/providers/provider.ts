/**
 * Where new hosts come from when every host is full (scale-out), where idle
 * ones go (scale-in), and what becomes of a host that dies. A provider only
 * starts and stops machines; the manager on a new host registers itself in
 * Redis, and the master allocates to it once it does.
 */
export interface LaunchedHost {
  /** The id the host's manager will register under (OMEGA_HOST_ID). */
  hostId: string;
  /** The address it will be reached at, when known at launch. */
  address?: string;
}

/**
 * What a provider did about a lost host (its heartbeat lapsed, the reaper
 * marked it lost and wrote off its sandboxes):
 *  - `restarted`: its manager is being started again and will register by itself;
 *  - `terminated`: the machine is gone (its capacity freed); the master forgets the host;
 *  - `reported`: the provider cannot act on it (not its host, or it gave up on it); an operator must;
 *  - `none`: nothing (yet): not lost long enough, or not this provider's to act on.
 */
export type LostHostAction = 'restarted' | 'terminated' | 'reported' | 'none';

export interface Provider {
  readonly name: string;
  /**
   * Scale-in: a host of this provider's without sandboxes for `idleSeconds`
   * is terminated (0: never), keeping at least `minHosts` live hosts.
   */
  readonly scaleIn: { readonly minHosts: number; readonly idleSeconds: number };
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
  /**
   * A host lost for `lostForMs`: restart or terminate it if the provider
   * can. Called on every pass while the host stays lost, so it must be cheap
   * and idempotent; it rejects only when the provider's own request failed.
   */
  hostLost(hostId: string, lostForMs: number): Promise<LostHostAction>;
  /** Release what the provider holds (child processes, clients). */
  stop(): Promise<void>;
}
