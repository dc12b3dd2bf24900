/**
 * `om keygen`: writes a new cluster key file (PROTOCOL.md §9). The file is created with mode
 * 0600, never chmod-ed afterwards, so the key is not readable by others even for a moment; with
 * --force it replaces the old file atomically through a new file of the same mode.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import type { Context } from "../lib/cli/context.ts";
import { importKey, newKeyText, parseKeyText } from "../lib/base/key.ts";
import { meta } from "./index.ts";

/** Where the hint suggests installing the key when FILE is a relative path. */
const SUGGESTED_PATH = "/etc/om/cluster.key";

export const spec: CommandSpec = {
  ...meta("keygen"),
  usage: ["om keygen FILE [--force]"],
  description:
    `Writes 32 random bytes as a key file ("om-cluster-key-v1" and 64 hex digits), mode 0600, and
prints its fingerprint. Every node of the cluster needs the same file: with it, om discover
authenticates every datagram and every channel connection, and refuses nodes without it. A missing
directory is created. An existing FILE is left alone unless --force is given; a new key then
means copying it to every node again.`,
  options: [
    {
      name: "force",
      flags: ["-f", "--force"],
      help: "replace FILE if it exists (every node then needs the new key)",
    },
  ],
  args: [{ name: "FILE", help: `the key file to write, e.g. ${SUGGESTED_PATH}`, complete: "file" }],
  examples: [
    {
      command: `om keygen ${SUGGESTED_PATH}`,
      says: "writes a new key (mode 0600) and prints its fingerprint",
    },
    {
      command: `scp -p ${SUGGESTED_PATH} node2:${SUGGESTED_PATH}`,
      says: "the same file on every node (scp -p keeps mode 0600)",
    },
    {
      command: `om discover --key ${SUGGESTED_PATH}`,
      says: "on every node: an authenticated cluster",
    },
    {
      command: `om keygen --force ${SUGGESTED_PATH}`,
      says: "replaces the key (copy it to every node again)",
    },
  ],
};

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

/** Creates `path` with mode 0600 and writes `text`; fails if it exists. */
async function createPrivate(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { createNew: true, mode: 0o600 });
}

/** Writes the key file: new only, or (force) through a 0600 temporary file renamed over it. */
async function writeKeyFile(path: string, text: string, force: boolean): Promise<void> {
  const fail = (why: string, cause?: unknown) =>
    new Error(`Cannot write cluster key "${path}": ${why}`, { cause });
  const existing = await Deno.lstat(path).catch(() => undefined);
  if (existing?.isDirectory) throw fail("it is a directory");
  if (existing && !force) {
    throw fail("it exists (--force replaces it; every node then needs the new key)");
  }
  await Deno.mkdir(parentOf(path), { recursive: true }).catch((error) => {
    throw fail((error as Error).message, error);
  });
  try {
    if (!existing) return await createPrivate(path, text);
    const temporary = `${path}.${Deno.pid}.tmp`;
    await Deno.remove(temporary).catch(() => {});
    await createPrivate(temporary, text);
    try {
      await Deno.rename(temporary, path);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw fail("it exists (--force replaces it; every node then needs the new key)", error);
    }
    throw fail((error as Error).message, error);
  }
}

/** Writes a new key file and says what to do with it. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  if (parsed.args.length === 0) {
    throw new UsageError("Cannot write a key: give the FILE to write it to");
  }
  if (parsed.args.length > 1) {
    throw new UsageError(`Cannot use "${parsed.args[1]}": keygen writes one FILE`);
  }
  const path = parsed.args[0];
  const text = newKeyText();
  const key = await importKey(parseKeyText(text, path));
  await writeKeyFile(path, text, parsed.options.force === true);
  const installed = path.startsWith("/") ? path : SUGGESTED_PATH;
  ctx.out(
    `Wrote a new cluster key to ${path} (mode 0600).\n` +
      `Fingerprint: ${key.fingerprint}\n` +
      `Copy this file to every node (e.g. ${installed}, mode 0600) and start each one with\n` +
      `  om discover --key ${installed}\n` +
      `(or key = ${installed} in om.conf). Every node logs the fingerprint at start.\n`,
  );
  return 0;
}
