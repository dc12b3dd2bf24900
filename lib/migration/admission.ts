/**
 * How much a target takes in (PROTOCOL.md §11, "Admission"): at most MAX_INCOMING migrations on
 * their way here at once, and a byte budget for what they announce they will write into the
 * migrations' file system (`mig.pages`' `reserve`, `mig.begin`'s `files`) before they write it.
 * Both are checked when the source asks, before its job is frozen, and a refusal is an error
 * answer: the job goes on where it was.
 *
 * The budget: the file system's free space (`stat -f`), less a sixteenth of its size kept free
 * (ROOM_MARGIN: for the logs, the images of a job that announced too little, and whatever else
 * lives there: `/run` is memory on most systems), less what other migrations announced and have
 * not written yet ("promised"). A reservation is written at once (fallocate, pagereceiver.ts), so
 * its bytes are promised only until the reserver has ended; pages that come without one (`criu
 * page-server`) are promised until the page server ends, image files until the restore starts.
 */

/** Most migrations a node takes in at once, from their first `mig.pages` until they run or go. */
export const MAX_INCOMING = 4;

/** The part of the migrations' file system no migration may take: 1/ROOM_MARGIN of its size. */
export const ROOM_MARGIN = 16;

/** A file system's size and the bytes free in it. */
export interface Room {
  readonly size: number;
  readonly free: number;
}

/**
 * The room in the file system of `dir`, which it makes if missing (`stat -f`: its blocks, and the
 * blocks available).
 */
export async function roomAt(dir: string): Promise<Room> {
  await Deno.mkdir(dir, { recursive: true });
  const output = await new Deno.Command("stat", {
    args: ["-f", "-c", "%S %b %a", "--", dir],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  const words = text.decode(output.stdout).trim().split(/\s+/);
  if (!output.success || words.length !== 3 || !words.every((word) => /^\d+$/.test(word))) {
    throw new Error(
      `Cannot read the room in ${dir}: stat -f: ${
        text.decode(output.stderr).trim() || "no figures"
      }`,
    );
  }
  const [block, blocks, available] = words.map(Number);
  return { size: block * blocks, free: block * available };
}

/** What one job has announced and not written yet: its pages, its image files. */
export type Promised = "pages" | "files";

/** Megabytes, for messages. */
export const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;

/**
 * Why a job `id` announcing `bytes` (`what`: "its pages") may not come to a node, said of the node
 * ("takes 4 migrations at once, ..."), or undefined when it may: `incoming` are the jobs on their
 * way there (`id` among them when it is already), `promised` the bytes each has announced and not
 * written, `room` the file system's (none: the bytes are not checked).
 */
export function admissionRefusal(
  request: { id: number; bytes: number; what: string },
  state: {
    incoming: ReadonlySet<number>;
    promised: ReadonlyMap<number, number>;
    room?: Room;
    max?: number;
  },
): string | undefined {
  const max = state.max ?? MAX_INCOMING;
  const others = [...state.incoming].filter((other) => other !== request.id);
  if (!state.incoming.has(request.id) && others.length >= max) {
    return `takes ${max} migrations at once, and ${others.length} are on their way there`;
  }
  if (request.bytes === 0 || !state.room) return undefined;
  const promised = others.reduce((sum, other) => sum + (state.promised.get(other) ?? 0), 0);
  const margin = Math.ceil(state.room.size / ROOM_MARGIN);
  const left = Math.max(0, state.room.free - margin - promised);
  if (request.bytes <= left) return undefined;
  return `has ${mib(left)} left for migrations, and ${request.what} need ${mib(request.bytes)} ` +
    `(${mib(state.room.free)} free, ${mib(promised)} promised to other migrations, ` +
    `${mib(margin)} kept free)`;
}

/** Options of {@linkcode Admission}. */
export interface AdmissionOptions {
  /** This node's id, for the refusals' text. */
  readonly nodeId: number;
  /** The migrations' directory (`$OM_ROOT/migrations`). */
  readonly dir: string;
  /** The jobs on their way here now (page servers, held restores, arrivals not yet running). */
  readonly incoming: () => Iterable<number>;
  /** The room at `dir` (default {@linkcode roomAt}); tests give their own. */
  readonly room?: (dir: string) => Promise<Room>;
  /** At most this many at once (default MAX_INCOMING). */
  readonly max?: number;
}

/** A job let in: disposing of it ends its admission step (its record here has taken over). */
export interface Admitted extends Disposable {
  readonly id: number;
}

/**
 * A target's admission: the cap and the budget of this file's header, over the jobs the target
 * says are on their way and those being admitted right now ({@linkcode take} to the end of its
 * `using` scope), so that two requests at once cannot both take the last room.
 */
export class Admission {
  readonly #options: AdmissionOptions;
  /** Bytes announced and not yet written, by job and kind. */
  readonly #promised = new Map<number, Map<Promised, number>>();
  /** Jobs between their admission and their record in the target (counted with `incoming`). */
  readonly #admitting = new Map<number, number>();
  /** Bumped whenever promised bytes are settled: a room read before may not count them. */
  #generation = 0;

  constructor(options: AdmissionOptions) {
    this.#options = options;
  }

  /** The jobs on their way here, those being admitted included. */
  incoming(): Set<number> {
    return new Set([...this.#options.incoming(), ...this.#admitting.keys()]);
  }

  /**
   * Lets job `id` in with `bytes` of `kind` announced (0: none; `what` names them: "its pages"),
   * or throws an Error that says why not (`Cannot take job N: node M ...`).
   */
  async take(
    id: number,
    promise: { kind: Promised; bytes: number; what: string },
  ): Promise<Admitted> {
    let room: Room | undefined;
    if (promise.bytes > 0) {
      // A reading of the room that a settle overtook may miss bytes just written: read again.
      for (let tries = 0; tries < 5; tries++) {
        const generation = this.#generation;
        room = await (this.#options.room ?? roomAt)(this.#options.dir);
        if (generation === this.#generation) break;
      }
    }
    const incoming = this.incoming();
    const promised = new Map<number, number>();
    for (const [job, kinds] of this.#promised) {
      if (!incoming.has(job)) this.#promised.delete(job); // gone: nothing more comes
      else promised.set(job, [...kinds.values()].reduce((sum, bytes) => sum + bytes, 0));
    }
    const why = admissionRefusal(
      { id, bytes: promise.bytes, what: promise.what },
      { incoming, promised, room, max: this.#options.max },
    );
    if (why) throw new Error(`Cannot take job ${id}: node ${this.#options.nodeId} ${why}`);
    if (promise.bytes > 0) {
      const kinds = this.#promised.get(id) ?? new Map<Promised, number>();
      kinds.set(promise.kind, promise.bytes);
      this.#promised.set(id, kinds);
    }
    this.#admitting.set(id, (this.#admitting.get(id) ?? 0) + 1);
    return {
      id,
      [Symbol.dispose]: () => {
        const left = (this.#admitting.get(id) ?? 1) - 1;
        if (left > 0) this.#admitting.set(id, left);
        else this.#admitting.delete(id);
      },
    };
  }

  /** The bytes of `kind` job `id` announced are written now (or never will be). */
  settle(id: number, kind: Promised): void {
    const kinds = this.#promised.get(id);
    if (!kinds?.delete(kind)) return;
    if (kinds.size === 0) this.#promised.delete(id);
    this.#generation++;
  }

  /** The bytes job `id` has announced and not written (for tests and logs). */
  promised(id: number): number {
    return [...(this.#promised.get(id)?.values() ?? [])].reduce((sum, bytes) => sum + bytes, 0);
  }
}
