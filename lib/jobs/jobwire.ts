/**
 * The job commands' data on the local socket and the channel (PROTOCOL.md §10): output chunks and
 * stdin in base64 inside JSON, and what a process's signal masks say of a signal.
 */
import type { JobExit, OutputFd, OutputRead } from "./table.ts";

/** Body of a `job.output` reply: the chunks' data in base64. */
export interface OutputReply {
  readonly offset: number;
  readonly chunks: readonly { readonly fd: OutputFd; readonly data: string }[];
  readonly exit?: JobExit;
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function unbase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Encodes an output read as the `job.output` reply (PROTOCOL.md §10). */
export function encodeOutput(read: OutputRead): OutputReply {
  return {
    offset: read.offset,
    chunks: read.chunks.map((c) => ({ fd: c.fd, data: base64(c.data) })),
    ...(read.exit ? { exit: read.exit } : {}),
  };
}

/** Decodes a `job.output` reply's chunks back to bytes. */
export function decodeOutput(
  reply: OutputReply,
): { offset: number; chunks: { fd: OutputFd; data: Uint8Array }[]; exit?: JobExit } {
  return {
    offset: reply.offset,
    chunks: reply.chunks.map((c) => ({ fd: c.fd, data: unbase64(c.data) })),
    ...(reply.exit ? { exit: reply.exit } : {}),
  };
}

export { base64 as encodeBase64, unbase64 as decodeBase64 };

/** The signal masks of /proc/<pid>/status: does the process catch or ignore signal `n`? */
export function handlesSignal(status: string, signal: number): boolean {
  const mask = (name: string) =>
    BigInt(`0x${
      new RegExp(`^${name}:\\s*([0-9a-f]+)`, "m")
        .exec(status)?.[1] ?? "0"
    }`);
  const bit = 1n << BigInt(signal - 1);
  return ((mask("SigCgt") | mask("SigIgn")) & bit) !== 0n;
}
