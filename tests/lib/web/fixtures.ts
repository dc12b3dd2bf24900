/**
 * Views, nodes, jobs and moves for the tests of lib/web/: small builders with every field
 * filled, each overridable.
 */
import type { ClusterView, JobView, MoveView, NodeView } from "../../../lib/web/model.ts";

export function node(id: number, over: Partial<NodeView> = {}): NodeView {
  return {
    id,
    address: `10.77.0.${id}`,
    status: "up",
    self: id === 1,
    inMap: true,
    cpus: 2,
    speed: 10000,
    load: 50 * id,
    loadPerCpu: 25 * id,
    mem: 1000,
    rmem: 1200,
    tmem: 2000,
    util: 10,
    flags: { stay: false, lstay: false, block: false, quiet: false },
    netIn: 100,
    netOut: 200,
    jobs: 0,
    ...over,
  };
}

export function job(home: number, pid: number, over: Partial<JobView> = {}): JobView {
  return {
    key: `${home}:${pid}`,
    pid,
    home,
    node: home,
    user: "root",
    uid: 0,
    command: "sleep 100",
    started: 1_000,
    migrations: 0,
    locked: false,
    ended: false,
    ...over,
  };
}

export function move(home: number, seq: number, over: Partial<MoveView> = {}): MoveView {
  return {
    key: `${home}:500:${seq}`,
    at: 10_000 + seq,
    pid: 100 + seq,
    home,
    from: home,
    to: home + 1,
    by: "user",
    user: "root",
    asker: null,
    result: "ok",
    frozenMs: 40,
    totalMs: 300,
    step: null,
    error: null,
    ...over,
  };
}

export function view(over: Partial<ClusterView> = {}): ClusterView {
  return {
    self: 1,
    keyed: true,
    interval: 1000,
    at: 50_000,
    unread: [],
    nodes: [node(1), node(2), node(3)],
    jobs: [],
    moves: [],
    ...over,
  };
}
