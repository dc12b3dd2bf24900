/**
 * The status page's updates are changes, not the whole cluster (PROTOCOL.md §14.3): `diffViews`
 * turns the view sent last and the new one into a change event (the nodes' changed fields, the
 * jobs and moves that are new, changed or gone), and `applyChange` turns the old view and the
 * event back into the new one. The page runs the very same `applyChange` (page.ts puts its source
 * into the page), so what the server diffs and what the browser applies cannot drift apart; the
 * tests check that applying a diff gives the new view exactly.
 */
import type { ClusterView, JobView, MoveView, NodeView } from "./model.ts";

/** What changed between two views (the `change` event of `/api/events`). */
export interface ChangeEvent {
  /** The new view's time (`at`): the page adds a point to each node's history for it. */
  readonly t: number;
  /** The view's own fields that changed. */
  readonly meta?: Partial<Pick<ClusterView, "self" | "keyed" | "interval" | "unread">>;
  /** Nodes: new ones whole, changed ones with their id and the changed fields; ids gone. */
  readonly nodes?: {
    readonly set?: readonly (Partial<NodeView> & { readonly id: number })[];
    readonly gone?: readonly number[];
  };
  /** Jobs new or changed (whole), keys gone. */
  readonly jobs?: { readonly set?: readonly JobView[]; readonly gone?: readonly string[] };
  /** Moves new or changed (whole), keys gone. */
  readonly moves?: { readonly set?: readonly MoveView[]; readonly gone?: readonly string[] };
}

/** Whether two JSON values are the same. */
function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Keyed rows new or changed, and keys gone, from `before` to `after`. */
function rows<T, K>(
  before: readonly T[],
  after: readonly T[],
  keyOf: (row: T) => K,
): { set: T[]; gone: K[] } {
  const old = new Map(before.map((row) => [keyOf(row), row]));
  const set = after.filter((row) => !same(old.get(keyOf(row)), row));
  const now = new Set(after.map(keyOf));
  const gone = [...old.keys()].filter((key) => !now.has(key));
  return { set, gone };
}

/** The part of a change that is set or gone, left out when nothing is. */
function part<T, K>(change: { set: T[]; gone: K[] }): { set?: T[]; gone?: K[] } | undefined {
  if (change.set.length === 0 && change.gone.length === 0) return undefined;
  return {
    ...(change.set.length ? { set: change.set } : {}),
    ...(change.gone.length ? { gone: change.gone } : {}),
  };
}

/** The change event from `before` (the view sent last) to `after`. */
export function diffViews(before: ClusterView, after: ClusterView): ChangeEvent {
  const meta: Record<string, unknown> = {};
  for (const field of ["self", "keyed", "interval", "unread"] as const) {
    if (!same(before[field], after[field])) meta[field] = after[field];
  }
  const oldNodes = new Map(before.nodes.map((n) => [n.id, n]));
  const nodeSet: (Partial<NodeView> & { id: number })[] = [];
  for (const node of after.nodes) {
    const old = oldNodes.get(node.id);
    if (!old) {
      nodeSet.push(node);
      continue;
    }
    const changed: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(node)) {
      if (!same(old[field as keyof NodeView], value)) changed[field] = value;
    }
    if (Object.keys(changed).length) nodeSet.push({ id: node.id, ...changed });
  }
  const ids = new Set(after.nodes.map((n) => n.id));
  const nodes = part({
    set: nodeSet,
    gone: before.nodes.map((n) => n.id).filter((id) => !ids.has(id)),
  });
  const jobs = part(rows(before.jobs, after.jobs, (j) => j.key));
  const moves = part(rows(before.moves, after.moves, (m) => m.key));
  return {
    t: after.at,
    ...(Object.keys(meta).length ? { meta } : {}),
    ...(nodes ? { nodes } : {}),
    ...(jobs ? { jobs } : {}),
    ...(moves ? { moves } : {}),
  };
}

/**
 * The view after `change`: nodes by id, jobs by home then PID, moves newest first (the orders of
 * lib/web/model.ts). Self-contained on purpose (no imports, no helpers outside it): the page runs
 * its source as it is.
 */
export function applyChange(view: ClusterView, change: ChangeEvent): ClusterView {
  const nodes = new Map(view.nodes.map((n) => [n.id, n]));
  for (const id of change.nodes?.gone ?? []) nodes.delete(id);
  for (const node of change.nodes?.set ?? []) {
    nodes.set(node.id, { ...nodes.get(node.id), ...node } as NodeView);
  }
  const jobs = new Map(view.jobs.map((j) => [j.key, j]));
  for (const key of change.jobs?.gone ?? []) jobs.delete(key);
  for (const job of change.jobs?.set ?? []) jobs.set(job.key, job);
  const moves = new Map(view.moves.map((m) => [m.key, m]));
  for (const key of change.moves?.gone ?? []) moves.delete(key);
  for (const move of change.moves?.set ?? []) moves.set(move.key, move);
  return {
    ...view,
    ...change.meta,
    at: change.t,
    nodes: [...nodes.values()].sort((a, b) => a.id - b.id),
    jobs: [...jobs.values()].sort((a, b) => a.home - b.home || a.pid - b.pid),
    moves: [...moves.values()].sort((a, b) =>
      b.at - a.at || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0)
    ),
  };
}
