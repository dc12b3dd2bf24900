/**
 * JSON request bodies of the jobs and migration commands (PROTOCOL.md §10, §11): read one with
 * its shape checked, or a TypeError naming the command, which the channel returns as the reply's
 * error string.
 */

const decoder = new TextDecoder();

/** A request body as JSON of the expected shape, or a TypeError naming the command. */
export function bodyOf<T>(command: string, body: Uint8Array, check: (value: T) => boolean): T {
  let value: T;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch {
    throw new TypeError(`Cannot read the body of ${command}: not JSON`);
  }
  if (value === null || typeof value !== "object" || !check(value)) {
    throw new TypeError(`Cannot read the body of ${command}: fields missing or of the wrong type`);
  }
  return value;
}

/** True for a job id: a positive whole number (the PID the home node gave the job). */
export const isId = (id: unknown): boolean => Number.isInteger(id) && (id as number) > 0;
