/**
 * What every node knows about every node: `nodes/<id>/{cpus,load,mem,rmem,tmem,speed,status,util}`
 * as openMosix's /proc/hpc/nodes/<id>/ looked, one decimal value (or word) and a newline per file.
 * The discovery daemon writes them; mosctl, ps and mon read them. PROTOCOL.md §3.7.
 */
import { replaceFile } from "./tree.ts";

/** The measured state of one node, as shared in the node-information message. */
export interface NodeInfo {
  readonly id: number;
  /** "up" while it reports; "down" when it stopped (its numbers are then 0, never stale). */
  readonly status: "up" | "down";
  /** openMosix load: 100 = one fully busy CPU of the reference speed. */
  readonly load: number;
  /** Relative speed (10000 = a 1 GHz reference CPU); `mosctl setspeed` sets it. */
  readonly speed: number;
  readonly cpus: number;
  /** Memory available for new work, as om counts it (bytes). */
  readonly mem: number;
  /** Raw free memory (bytes). */
  readonly rmem: number;
  /** Total memory (bytes). */
  readonly tmem: number;
  /** CPU utilisation, percent of all the node's CPUs. */
  readonly util: number;
}

/** The file names, in the order the HOWTO lists them. */
export const NODE_FILES = [
  "cpus",
  "load",
  "mem",
  "rmem",
  "tmem",
  "speed",
  "status",
  "util",
] as const;

const encoder = new TextEncoder();

/** Writes one node's files (each replaced atomically). */
export async function writeNodeInfo(nodesDir: string, info: NodeInfo): Promise<void> {
  await nodeInfoWriter(nodesDir)(info);
}

/** A node marked down: status "down", every number 0. */
export function downInfo(id: number): NodeInfo {
  return { id, status: "down", load: 0, speed: 0, cpus: 0, mem: 0, rmem: 0, tmem: 0, util: 0 };
}

/** Reads one node's files; undefined when the node has no directory. */
export async function readNodeInfo(nodesDir: string, id: number): Promise<NodeInfo | undefined> {
  const dir = `${nodesDir}/${id}`;
  let texts: string[];
  try {
    texts = await Promise.all(NODE_FILES.map((name) => Deno.readTextFile(`${dir}/${name}`)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const value = (name: (typeof NODE_FILES)[number]) => texts[NODE_FILES.indexOf(name)].trim();
  const number = (name: Exclude<(typeof NODE_FILES)[number], "status">) => {
    const n = Number(value(name));
    if (!Number.isFinite(n)) throw new SyntaxError(`Cannot read ${dir}/${name}: "${value(name)}"`);
    return n;
  };
  return {
    id,
    status: value("status") === "up" ? "up" : "down",
    load: number("load"),
    speed: number("speed"),
    cpus: number("cpus"),
    mem: number("mem"),
    rmem: number("rmem"),
    tmem: number("tmem"),
    util: number("util"),
  };
}

/** Every node with a directory, ascending by id. */
export async function listNodeInfo(nodesDir: string): Promise<NodeInfo[]> {
  const ids: number[] = [];
  try {
    for await (const entry of Deno.readDir(nodesDir)) {
      if (entry.isDirectory && /^\d+$/.test(entry.name)) ids.push(Number(entry.name));
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  ids.sort((a, b) => a - b);
  const infos = await Promise.all(ids.map((id) => readNodeInfo(nodesDir, id)));
  return infos.filter((i): i is NodeInfo => i !== undefined);
}

/**
 * A writer for the daemon, which rewrites every node's files at every interval: it replaces only
 * the files whose value changed (cpus, speed and tmem rarely do), and makes each directory once.
 */
export function nodeInfoWriter(nodesDir: string): (info: NodeInfo) => Promise<void> {
  const written = new Map<number, Map<string, string>>();
  return async (info) => {
    let files = written.get(info.id);
    if (!files) {
      await Deno.mkdir(`${nodesDir}/${info.id}`, { recursive: true });
      files = new Map();
      written.set(info.id, files);
    }
    const known = files;
    const write = async (name: (typeof NODE_FILES)[number]) => {
      const value = name === "status" ? info.status : String(Math.round(info[name]));
      if (known.get(name) === value) return;
      await replaceFile(`${nodesDir}/${info.id}/${name}`, encoder.encode(`${value}\n`));
      known.set(name, value);
    };
    // The figures first, the status last: a reader that sees a node's new status sees the
    // figures that go with it (a node down has every number 0 by then).
    await Promise.all(NODE_FILES.filter((name) => name !== "status").map(write));
    await write("status");
  };
}
