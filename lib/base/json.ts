/**
 * JSON as the channel carries it: the body of a request or a reply is UTF-8 JSON (PROTOCOL.md §8).
 */

const encoder = new TextEncoder();

/** `value` as the UTF-8 bytes of its JSON. */
export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

const decoder = new TextDecoder();

/** The value whose JSON `bytes` hold (a reply's body); throws SyntaxError when it is not JSON. */
export function jsonOf<T = unknown>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes));
}
