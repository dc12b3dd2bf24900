/**
 * The tuning settings `mosctl` keeps in admin files, with om's defaults: the speed, the yardstick,
 * the decay parameters and the overheads. The originals' formats are lost except the decay
 * defaults (HOWTO table 8-2: slow 975, fast 926) and the speed's meaning ("relative to
 * PIII/1GHz"), so the rest is om's own; PROTOCOL.md §3.8 is the reference.
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

/** The decay parameters: how often statistics decay and how much of them each decay keeps. */
export interface Decay {
  /** Seconds between two decays. */
  readonly interval: number;
  /** Per mille kept at each decay by slowly decaying processes. */
  readonly slow: number;
  /** Per mille kept at each decay by fast decaying processes. */
  readonly fast: number;
}

/** The defaults: slow 975 and fast 926 are the HOWTO's; the interval of 1 s is om's. */
export const DEFAULT_DECAY: Decay = { interval: 1, slow: 975, fast: 926 };

/** Allowed decay interval, in seconds. */
export const DECAY_INTERVAL_RANGE: readonly [number, number] = [1, 3600];

/** Allowed slow and fast decay, per mille kept. */
export const DECAY_RATE_RANGE: readonly [number, number] = [0, 1000];

/** The admin files of the decay parameters (the HOWTO's table spells them decay-interval, ...). */
export const DECAY_FILES = {
  interval: "decayinterval",
  slow: "slowdecay",
  fast: "fastdecay",
} as const;

/** What `gettune` prints when `admin/overheads` does not exist: no overhead counted. */
export const DEFAULT_OVERHEADS = "0";
