import Docker from 'dockerode';
import type { WorkspaceDisks } from './disk.js';
import { OmegaError } from '../../src/errors.js';

export const LABELS = {
  managed: 'omega.managed',
  host: 'omega.host',
  template: 'omega.template',
  sandbox: 'omega.sandbox',
  pool: 'omega.pool',
  volume: 'omega.volume',
} as const;

export const WORKER_PORT = '8080/tcp';

/** Who user code runs as (the worker's OMEGA_WORKER_USER; the images' `sandbox` user). */
export const SANDBOX_USER = '1000:1000';

/**
 * What the agent keeps of root (worker/user.ts): owning what it writes for a
 * client (CHOWN, DAC_OVERRIDE, FOWNER), starting user code as SANDBOX_USER
 * (SETUID, SETGID) and signalling it (KILL). User code has none of them.
 */
export const AGENT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL'];

export interface ContainerSpec {
  name: string;
  image: string;
  template: string;
  volume: string;
  /** Labels besides the managed/host/template ones (sandbox id or pool). */
  labels: Record<string, string>;
  env: Record<string, string>;
  memoryMb: number;
  cpus: number;
  pids: number;
  tmpMb: number;
  /** A named workspace's volume: mounted as it is when it exists (made when new). */
  reuseVolume?: boolean;
  /** Size of the workspace's own filesystem; 0: a plain volume. */
  diskMb: number;
  nofile: number;
}

export interface RunningContainer {
  id: string;
  /** Where the worker is reached from this host: the published address and port, or the container's own address and the worker's port. */
  address: string;
  hostPort: number;
  /** The container's own address on its network (what the host firewall knows it by); '' when the engine gave none. */
  ip: string;
}

/** A container's use of its host at one moment (DockerRuntime.usage). */
export interface ContainerUsage {
  /** When the engine read it. */
  atMs: number;
  /** CPU time used since it started, in nanoseconds. */
  cpuNs: number;
  /** The CPUs it may use: its limit (perhaps a fraction), else the host's. */
  cpus: number;
  /** Memory in use, without the page cache the kernel can drop. */
  memUsed: number;
  memCache: number;
  /** Its memory limit (the host's memory when it has none). */
  memLimit: number;
}

/** The part of the engine's stats answer read here, as it is: which memory fields come depends on the cgroup version (the typings list v1's as always there). */
interface DockerStats {
  read: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number }; online_cpus?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number | undefined> };
}

export interface ListedContainer {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
  hostPort: number | null;
  createdMs: number;
}

/**
 * The Docker engine, as the manager needs it. Failures are thrown as coded
 * errors to the caller, never logged and dropped here: a 404 is NOT_FOUND,
 * a 304 on start or stop is success, an unreachable engine DOCKER_UNAVAILABLE.
 */
export class DockerRuntime {
  readonly docker: Docker;

  /**
   * `publishIp`: where a worker's port is published; null publishes none
   * (the TLS ingress and the manager reach the worker at its container
   * address, which skips docker-proxy's copy of every byte and the proxy
   * process itself).
   */
  constructor(
    socketPath: string,
    private readonly hostId: string,
    private readonly publishIp: string | null,
    /** The network sandboxes join (SandboxNetwork), or null for Docker's default bridge. */
    private readonly networkMode: string | null = null,
    /** Fixed-size workspaces (WorkspaceDisks), or null for a plain volume on the host's disk. */
    private readonly disks: WorkspaceDisks | null = null,
    /** The OCI runtime of sandbox containers (a name in the engine's `runtimes`, e.g. runsc), or null for the engine's default. */
    private readonly ociRuntime: string | null = null,
  ) {
    this.docker = new Docker({ socketPath });
  }

  async ping(): Promise<boolean> {
    try {
      await this.docker.ping();
      return true;
    } catch {
      return false;
    }
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw dockerError(err, `inspecting image ${image}`);
    }
  }

  /** Create the volume (if new) and the hardened container, start it, and read its published port. */
  async start(spec: ContainerSpec): Promise<RunningContainer> {
    let container: Docker.Container;
    try {
      // A named workspace's volume that exists already is mounted as it is: its files are the point.
      const reuse = spec.reuseVolume === true && (await this.volumeExists(spec.volume));
      // A workspace of its own size: its filesystem image on a loop device, which the local driver mounts.
      const device = !reuse && this.disks && spec.diskMb > 0 ? await this.disks.create(spec.volume, spec.diskMb) : null;
      if (!reuse) try {
        await this.docker.createVolume({
          Name: spec.volume,
          Labels: { [LABELS.managed]: 'true', [LABELS.host]: this.hostId },
          ...(device ? { Driver: 'local', DriverOpts: { type: 'ext4', device } } : {}),
        });
      } catch (err) {
        // No volume owns the image: it goes now (the engine away, say), not with a volume later.
        if (!device) throw err;
        throw await this.disks!.releaseAfter(spec.volume, dockerError(err, `creating container ${spec.name}`));
      }
      container = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        // The agent is root with the few capabilities below; user code runs as SANDBOX_USER (worker/user.ts).
        User: '0:0',
        Env: [...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`), `OMEGA_WORKER_USER=${SANDBOX_USER}`],
        Labels: {
          [LABELS.managed]: 'true',
          [LABELS.host]: this.hostId,
          [LABELS.template]: spec.template,
          [LABELS.volume]: spec.volume,
          ...spec.labels,
        },
        ExposedPorts: { [WORKER_PORT]: {} },
        HostConfig: {
          ...(this.networkMode ? { NetworkMode: this.networkMode } : {}),
          ...(this.ociRuntime ? { Runtime: this.ociRuntime } : {}),
          ...(this.publishIp !== null ? { PortBindings: { [WORKER_PORT]: [{ HostIp: this.publishIp, HostPort: '' }] } } : {}),
          Memory: spec.memoryMb * 1024 * 1024,
          MemorySwap: spec.memoryMb * 1024 * 1024,
          NanoCpus: Math.round(spec.cpus * 1e9),
          PidsLimit: spec.pids,
          ReadonlyRootfs: true,
          // exec: a playground compiles and runs things from /tmp; the sandbox
          // boundary is the container, not the mount flag.
          Tmpfs: { '/tmp': `rw,exec,nosuid,nodev,size=${spec.tmpMb}m,mode=1777` },
          Mounts: [{ Type: 'volume', Source: spec.volume, Target: '/workspace' }],
          CapDrop: ['ALL'],
          CapAdd: AGENT_CAPABILITIES,
          Ulimits: [{ Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile }],
          SecurityOpt: ['no-new-privileges'],
          Init: false,
        },
      });
    } catch (err) {
      throw dockerError(err, `creating container ${spec.name}`);
    }
    try {
      await container.start();
    } catch (err) {
      if (statusOf(err) !== 304) throw await this.removeFailed(container.id, dockerError(err, `starting container ${spec.name}`));
    }
    try {
      return await this.reached(container, spec.name);
    } catch (err) {
      throw await this.removeFailed(container.id, err instanceof OmegaError ? err : dockerError(err, `inspecting container ${spec.name}`));
    }
  }

  /** Where a started container's worker is reached: its published port, or its own address (throws when it has neither). */
  private async reached(container: Docker.Container, name: string): Promise<RunningContainer> {
    const info = await container.inspect();
    const id = container.id;
    const ip = Object.values(info.NetworkSettings.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress ?? '';
    if (this.publishIp === null) {
      if (!ip) throw new OmegaError('SANDBOX_START_FAILED', `container ${name} has no network address`);
      return { id, address: ip, ip, hostPort: Number(WORKER_PORT.split('/')[0]) };
    }
    const port = info.NetworkSettings.Ports?.[WORKER_PORT]?.[0]?.HostPort;
    if (!port) throw new OmegaError('SANDBOX_START_FAILED', `container ${name} has no published port`);
    return { id, address: this.publishIp, ip, hostPort: Number(port) };
  }

  /** Freeze every process of a container (the cgroup freezer); one paused already is fine. */
  async pause(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).pause();
    } catch (err) {
      // 409: paused already (or not running: the caller's check of the container's state says which).
      if (statusOf(err) !== 409) throw dockerError(err, `pausing container ${id}`);
    }
  }

  async unpause(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).unpause();
    } catch (err) {
      if (statusOf(err) !== 409) throw dockerError(err, `unpausing container ${id}`);
    }
  }

  /** Stop a container, keeping it (and its volume) to start again; one stopped already is fine. */
  async stop(id: string, graceSeconds = 5): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: graceSeconds });
    } catch (err) {
      if (statusOf(err) !== 304) throw dockerError(err, `stopping container ${id}`);
    }
  }

  /** Start a stopped container again; where its worker is reached now (a published port is chosen anew). */
  async restart(id: string): Promise<RunningContainer> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (statusOf(err) !== 304) throw dockerError(err, `starting container ${id}`);
    }
    return this.reached(this.docker.getContainer(id), id.slice(0, 12));
  }

  /**
   * What a container uses now, from one reading of the engine's stats
   * (`one-shot`: no wait for a second sample): its CPU time so far, its
   * memory less the page cache the kernel can drop (as `docker stats` counts
   * it, cgroup v1 or v2), that cache, its limit, and how many CPUs it may use (its inspection).
   */
  async usage(id: string): Promise<ContainerUsage> {
    let s: DockerStats;
    let nanoCpus: number;
    try {
      const c = this.docker.getContainer(id);
      const [stats, info] = await Promise.all([c.stats({ stream: false, 'one-shot': true }), c.inspect()]);
      s = stats as unknown as DockerStats;
      nanoCpus = info.HostConfig.NanoCpus ?? 0;
    } catch (err) {
      throw dockerError(err, `reading the stats of container ${id}`);
    }
    const m = s.memory_stats ?? {};
    const st = m.stats ?? {};
    // v1 names it total_inactive_file, v2 inactive_file; the cache is v1's cache, v2's file.
    const inactive = st.total_inactive_file ?? st.inactive_file ?? 0;
    const usage = m.usage ?? 0;
    return {
      atMs: Date.parse(s.read) || Date.now(),
      cpuNs: s.cpu_stats?.cpu_usage?.total_usage ?? 0,
      cpus: nanoCpus ? nanoCpus / 1e9 : (s.cpu_stats?.online_cpus ?? 1),
      memUsed: Math.max(0, usage - inactive),
      memCache: st.cache ?? st.file ?? 0,
      memLimit: m.limit ?? 0,
    };
  }

  /** The engine's state of a container (running, paused, exited, ...), or null when it is gone. */
  async state(id: string): Promise<string | null> {
    try {
      return (await this.docker.getContainer(id).inspect()).State.Status;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw dockerError(err, `inspecting container ${id}`);
    }
  }

  /**
   * Remove a container whose start failed; the error to throw. A removal
   * that fails too joins the failure, both causes kept, rather than being
   * dropped: the caller logs it once, and the manager's reconciler removes
   * the container later.
   */
  private async removeFailed(id: string, failure: OmegaError): Promise<OmegaError> {
    try {
      await this.remove(id);
      return failure;
    } catch (err) {
      return new OmegaError(failure.code, `${failure.message}; removing the container failed too: ${(err as Error).message}`, {
        cause: new AggregateError([failure.cause ?? failure, err], 'the start and the removal failed'),
      });
    }
  }

  /** Is the container still running? (false when it is gone or stopped) */
  async running(id: string): Promise<boolean> {
    try {
      return (await this.docker.getContainer(id).inspect()).State.Running;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw dockerError(err, `inspecting container ${id}`);
    }
  }

  async logsTail(id: string, lines = 20): Promise<string> {
    try {
      const buf = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines })) as unknown as Buffer;
      // Strip the 8-octet multiplexing headers of each frame.
      const out: string[] = [];
      for (let off = 0; off + 8 <= buf.length; ) {
        const len = buf.readUInt32BE(off + 4);
        out.push(buf.subarray(off + 8, off + 8 + len).toString('utf8'));
        off += 8 + len;
      }
      return out.join('').trim();
    } catch {
      return '';
    }
  }

  /** Stop and remove a container; removing one that is gone already succeeds. */
  async remove(id: string): Promise<void> {
    const c = this.docker.getContainer(id);
    try {
      await c.stop({ t: 1 });
    } catch (err) {
      const st = statusOf(err);
      if (st === 404) return;
      if (st !== 304 && st !== 409) throw dockerError(err, `stopping container ${id}`);
    }
    try {
      await c.remove({ force: true, v: false });
    } catch (err) {
      const st = statusOf(err);
      // 404: gone; 409: removal already in progress.
      if (st !== 404 && st !== 409) throw dockerError(err, `removing container ${id}`);
    }
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.docker.getVolume(name).remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw dockerError(err, `removing volume ${name}`);
    }
    await this.disks?.release(name);
  }

  /** Workspace images whose volume is gone (removed outside the manager), released after `graceMs`. */
  async sweepDisks(graceMs: number): Promise<string[]> {
    if (!this.disks) return [];
    // At least a while: an image is made just before its volume, and must not be taken for a leftover meanwhile.
    return this.disks.sweep(new Set((await this.volumes()).map((v) => v.name)), Math.max(graceMs, 30_000));
  }

  /** Every volume of Omega's on this host. */
  /** A volume's mountpoint and driver options (a workspace image's device), as the engine has them. */
  async volumeExists(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).inspect();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw dockerError(err, `inspecting volume ${name}`);
    }
  }

  async volumeInfo(name: string): Promise<{ Mountpoint: string; Options?: Record<string, string> | null }> {
    try {
      return (await this.docker.getVolume(name).inspect()) as { Mountpoint: string; Options?: Record<string, string> | null };
    } catch (err) {
      throw dockerError(err, `inspecting volume ${name}`);
    }
  }

  async volumes(): Promise<Array<{ name: string; createdMs: number }>> {
    let res: Docker.VolumeInspectInfo[];
    try {
      res = (await this.docker.listVolumes({ filters: { label: [`${LABELS.managed}=true`, `${LABELS.host}=${this.hostId}`] } })).Volumes ?? [];
    } catch (err) {
      throw dockerError(err, 'listing volumes');
    }
    return res.map((v) => ({ name: v.Name, createdMs: Date.parse((v as { CreatedAt?: string }).CreatedAt ?? '') || 0 }));
  }

  /**
   * Call `onExit` whenever a container of Omega's on this host stops (the
   * engine's `die` event), until the returned function is called. The event
   * stream is re-opened when it ends (an engine restart); the reconciler's
   * pass catches what happens while it is closed.
   */
  watchExits(onExit: (e: { containerId: string; labels: Record<string, string>; exitCode: string }) => void, onError: (err: unknown) => void): () => void {
    let stopped = false;
    let current: NodeJS.ReadableStream | null = null;
    const open = async (): Promise<void> => {
      if (stopped) return;
      try {
        const stream = (await this.docker.getEvents({
          filters: { type: ['container'], event: ['die'], label: [`${LABELS.managed}=true`, `${LABELS.host}=${this.hostId}`] },
        })) as NodeJS.ReadableStream;
        current = stream;
        let buf = '';
        stream.on('data', (chunk: Buffer) => {
          buf += chunk.toString('utf8');
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!line.trim()) continue;
            try {
              const ev = JSON.parse(line) as { id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
              const attrs = ev.Actor?.Attributes ?? {};
              onExit({ containerId: ev.Actor?.ID ?? ev.id ?? '', labels: attrs, exitCode: attrs.exitCode ?? '' });
            } catch (err) {
              onError(err);
            }
          }
        });
        const again = () => {
          if (current === stream) current = null;
          if (!stopped) setTimeout(() => void open(), 1000).unref();
        };
        stream.once('end', again);
        stream.once('error', (err) => {
          onError(err);
          again();
        });
      } catch (err) {
        onError(err);
        if (!stopped) setTimeout(() => void open(), 2000).unref();
      }
    };
    void open();
    return () => {
      stopped = true;
      (current as unknown as { destroy?: () => void } | null)?.destroy?.();
    };
  }

  /** Every container of Omega's on this host, running or not. */
  async list(): Promise<ListedContainer[]> {
    let rows: Docker.ContainerInfo[];
    try {
      rows = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABELS.managed}=true`, `${LABELS.host}=${this.hostId}`] },
      });
    } catch (err) {
      throw dockerError(err, 'listing containers');
    }
    return rows.map((r) => ({
      id: r.Id,
      name: (r.Names[0] ?? '').replace(/^\//, ''),
      state: r.State,
      labels: r.Labels,
      hostPort: r.Ports.find((p) => p.PrivatePort === 8080 && p.PublicPort)?.PublicPort ?? null,
      createdMs: r.Created * 1000,
    }));
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** A Docker failure as a coded error with its cause: unreachable engine, missing object, or other. */
export function dockerError(err: unknown, doing: string): OmegaError {
  if (err instanceof OmegaError) return err;
  const st = statusOf(err);
  const code = (err as NodeJS.ErrnoException).code;
  if (st === undefined && (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES')) {
    return new OmegaError('DOCKER_UNAVAILABLE', `the Docker engine cannot be reached (${code}) while ${doing}`, { cause: err });
  }
  if (st === 404) return new OmegaError('NOT_FOUND', `not found while ${doing}`, { cause: err });
  return new OmegaError('SANDBOX_START_FAILED', `Docker failed while ${doing}: ${(err as Error).message}`, { cause: err });
}
