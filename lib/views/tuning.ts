/**
 * The tuning settings `mosctl` keeps in admin files, with om's defaults: the speed, the yardstick,
 * the decay parameters and the overheads; their formats, and reading and writing them with every
 * value checked. The originals' formats are lost except the decay defaults (HOWTO table 8-2:
 * slow 975, fast 926) and the speed's meaning ("relative to PIII/1GHz"), so the rest is om's own;
 * PROTOCOL.md §3.8 is the reference. The file names and the decay defaults are
 * lib/state/admin.ts's, which the balancer reads too.
 *
 * | file                 | content                       | default (file absent) |
 * |----------------------|-------------------------------|-----------------------|
 * | `admin/speed`        | decimal, 1..1000000           | measured by om        |
 * | `admin/yardstick`    | `NAME SPEED`, one line        | `PIII-1000 10000`     |
 * | `admin/decayinterval`| decimal seconds, 1..3600      | 1                     |
 * | `admin/slowdecay`    | per mille retained, 0..1000   | 975                   |
 * | `admin/fastdecay`    | per mille retained, 0..1000   | 926                   |
 * | `admin/overheads`    | free text, printed as it is   | `0`                   |
 */
import {
  type AdminSetting,
  type Decay,
  DECAY_FILES,
  DEFAULT_DECAY,
  readAdmin,
  writeAdmin,
} from "../state/admin.ts";
import { readMap, type StatePaths } from "../state/tree.ts";
import { upFigures } from "./figures.ts";

/** The range of `mosctl setspeed` (10000 = a 1 GHz PIII, the HOWTO's reference). */
export const SPEED_RANGE: readonly [number, number] = [1, 1000000];

/** The reference CPU against which speed and load are measured. */
export interface Yardstick {
  /** A processor type (`PIII-1000`) or the node it was taken from (`node5`). */
  readonly name: string;
  /** Its speed in om's units. */
  readonly speed: number;
}

/**
 * The processor types `setyard` knows, by name. Only the HOWTO's reference is known: the table of
 * the original is lost, and any other figure would be invented.
 */
export const PROCESSOR_TYPES: Readonly<Record<string, number>> = { "PIII-1000": 10000 };

/** The yardstick when none was set: the HOWTO's PIII at 1 GHz, speed 10000. */
export const DEFAULT_YARDSTICK: Yardstick = { name: "PIII-1000", speed: 10000 };

const YARDSTICK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/** Formats the content of `admin/yardstick`: `NAME SPEED` (the admin writer adds the newline). */
export function formatYardstick(yardstick: Yardstick): string {
  return `${yardstick.name} ${yardstick.speed}`;
}

/** Parses `admin/yardstick`; throws SyntaxError unless it is `NAME SPEED`. */
export function parseYardstick(text: string): Yardstick {
  const fields = text.trim().split(/\s+/);
  const [name, speed] = fields;
  const [min, max] = SPEED_RANGE;
  if (
    fields.length !== 2 || !YARDSTICK_NAME.test(name) || !/^\d+$/.test(speed) ||
    Number(speed) < min || Number(speed) > max
  ) {
    throw new SyntaxError(`Cannot parse yardstick "${text.trim()}": expected "NAME SPEED"`);
  }
  return { name, speed: Number(speed) };
}

/** Allowed decay interval, in seconds. */
export const DECAY_INTERVAL_RANGE: readonly [number, number] = [1, 3600];

/** Allowed slow and fast decay, per mille kept. */
export const DECAY_RATE_RANGE: readonly [number, number] = [0, 1000];

/** What `gettune` prints when `admin/overheads` does not exist: no overhead counted. */
export const DEFAULT_OVERHEADS = "0";

/** The number an admin file holds, checked against its range; anything else is an error. */
function numberSetting(
  paths: StatePaths,
  name: AdminSetting,
  text: string,
  [min, max]: readonly [number, number],
): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new Error(
      `Cannot read "${paths.admin}/${name}": "${text}" is not a number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

/** A decimal setting of admin/ in a range, `fallback` when absent; anything else is an error. */
async function readSetting(
  paths: StatePaths,
  name: AdminSetting,
  fallback: number,
  range: readonly [number, number],
): Promise<number> {
  const text = await readAdmin(paths, name);
  return text === undefined ? fallback : numberSetting(paths, name, text, range);
}

/** The decay parameters as set, each one's default when its file is absent. */
export async function readDecay(paths: StatePaths): Promise<Decay> {
  const { interval, slow, fast } = DECAY_FILES;
  return {
    interval: await readSetting(paths, interval, DEFAULT_DECAY.interval, DECAY_INTERVAL_RANGE),
    slow: await readSetting(paths, slow, DEFAULT_DECAY.slow, DECAY_RATE_RANGE),
    fast: await readSetting(paths, fast, DEFAULT_DECAY.fast, DECAY_RATE_RANGE),
  };
}

/**
 * This node's speed: admin/speed as set, else what nodes/<self>/speed publishes; with this node's
 * id, null when no map in force tells it.
 */
export async function ownSpeed(paths: StatePaths): Promise<{ id: number | null; speed: number }> {
  const set = await readAdmin(paths, "speed");
  const state = await readMap(paths);
  const id = state && state.self !== 0 ? state.self : null;
  if (set !== undefined) return { id, speed: numberSetting(paths, "speed", set, SPEED_RANGE) };
  if (id === null) {
    throw new Error(
      `Cannot read this node's speed: "${paths.admin}/speed" is not set (mosctl setspeed N) ` +
        `and no map in force tells this node's id`,
    );
  }
  return { id, speed: (await upFigures(paths.nodes, id, "speed")).speed };
}

/** The yardstick as set, the default when `admin/yardstick` is absent. */
export async function readYardstick(paths: StatePaths): Promise<Yardstick> {
  const text = await readAdmin(paths, "yardstick");
  if (text === undefined) return DEFAULT_YARDSTICK;
  try {
    return parseYardstick(text);
  } catch {
    throw new Error(
      `Cannot read "${paths.admin}/yardstick": expected "NAME SPEED", found "${text}"`,
    );
  }
}

/**
 * The yardstick a node gives: `node<ID> <its speed>`, for this node its speed as ownSpeed tells
 * it (named `this` when no map tells its id).
 */
export async function yardstickOf(paths: StatePaths, node: number | "this"): Promise<Yardstick> {
  if (node === "this") {
    const { id, speed } = await ownSpeed(paths);
    return { name: id === null ? "this" : `node${id}`, speed };
  }
  return { name: `node${node}`, speed: (await upFigures(paths.nodes, node, "speed")).speed };
}

/** Writes `admin/yardstick`. */
export async function writeYardstick(paths: StatePaths, yardstick: Yardstick): Promise<void> {
  await writeAdmin(paths, "yardstick", formatYardstick(yardstick));
}

/** `admin/overheads` as it is, or DEFAULT_OVERHEADS when absent or empty (`tuned` false). */
export async function readOverheads(
  paths: StatePaths,
): Promise<{ overheads: string; tuned: boolean }> {
  const text = await readAdmin(paths, "overheads");
  const tuned = text !== undefined && text !== "";
  return { overheads: tuned ? text : DEFAULT_OVERHEADS, tuned };
}
