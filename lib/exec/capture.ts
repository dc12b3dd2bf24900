/**
 * What a node keeps of a command's output for `om exec`: stdout and stderr share one budget
 * (OUTPUT_LIMIT in lib/exec/wire.ts); the first bytes that come are kept, whichever stream they
 * come on, and the rest is counted and dropped, per stream, so that the person learns how much was
 * cut and where. Pure: the runner feeds it what it reads.
 */

/** One command's kept output and the bytes dropped. */
export class OutputCapture {
  readonly limit: number;
  #kept = 0;
  readonly #chunks: { stdout: Uint8Array[]; stderr: Uint8Array[] } = { stdout: [], stderr: [] };
  readonly #dropped = { stdout: 0, stderr: 0 };

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes a chunk read from `stream`: keeps what the budget has room for, counts the rest. */
  add(stream: "stdout" | "stderr", chunk: Uint8Array): void {
    const room = Math.max(0, this.limit - this.#kept);
    const keep = Math.min(room, chunk.length);
    if (keep > 0) {
      // A copy: a reader may reuse its buffer.
      this.#chunks[stream].push(chunk.slice(0, keep));
      this.#kept += keep;
    }
    this.#dropped[stream] += chunk.length - keep;
  }

  /** Bytes kept, both streams together. */
  get kept(): number {
    return this.#kept;
  }

  /** The kept output of each stream, and what was dropped of each. */
  result(): {
    stdout: Uint8Array;
    stderr: Uint8Array;
    dropped: { stdout: number; stderr: number };
  } {
    return {
      stdout: concat(this.#chunks.stdout),
      stderr: concat(this.#chunks.stderr),
      dropped: { ...this.#dropped },
    };
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
