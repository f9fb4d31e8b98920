/**
 * A loopback TCP round-robin in front of several webhook processes, standing
 * in for a Service: each new connection goes to the next backend that accepts.
 * @module
 */

/** A running proxy. */
export interface RoundRobinProxy {
  port: number;
  /** Replaces the backend ports (new connections only; open ones stay). */
  setBackends(ports: number[]): void;
  /** How many connections each backend port received. */
  counts: Map<number, number>;
  close(): Promise<void>;
}

/** Starts the proxy on 127.0.0.1 (free port). */
export function startRoundRobinProxy(initial: number[]): RoundRobinProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let backends = [...initial];
  let next = 0;
  const counts = new Map<number, number>();
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();

  const handle = async (client: Deno.Conn) => {
    open.add(client);
    let upstream: Deno.Conn | undefined;
    const order = backends.map((_, i) => backends[(next + i) % backends.length] ?? 0);
    next++;
    for (const port of order) {
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port });
        counts.set(port, (counts.get(port) ?? 0) + 1);
        break;
      } catch { /* restarting: try the next backend */ }
    }
    if (!upstream) {
      client.close();
      open.delete(client);
      return;
    }
    open.add(upstream);
    const up = upstream;
    await Promise.allSettled([
      client.readable.pipeTo(up.writable),
      up.readable.pipeTo(client.writable),
    ]);
    for (const c of [client, up]) {
      open.delete(c);
      try {
        c.close();
      } catch { /* closed by pipeTo */ }
    }
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const t = handle(conn);
        tasks.add(t);
        t.finally(() => tasks.delete(t));
      }
    } catch { /* listener closed */ }
  })();

  return {
    port: listener.addr.port,
    counts,
    setBackends(ports) {
      backends = [...ports];
    },
    async close() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await accepting;
      await Promise.allSettled([...tasks]);
    },
  };
}
