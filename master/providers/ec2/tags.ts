/**
 * How the master finds the cluster's instances and knows them as its own:
 * every instance the ec2 provider launches carries both tags, with
 * omega:cluster=<OMEGA_REDIS_PREFIX>, and it only ever terminates instances
 * that carry both. OMEGA_EC2_TAGS may not set them.
 */
export const CLUSTER_TAG = 'omega:cluster';
export const ROLE_TAG = 'omega:role';
export const ROLE = 'host';
