/**
 * `om run` (mosrun): runs a command as a job of the local daemon, so that it can move, and
 * stands in for it at home: the job's output comes here, this terminal's input goes there, the
 * signals sent to `om run` reach it, and its exit status becomes ours. Protocol: PROTOCOL.md §10.
 */
import { type ChannelClient, connectChannel } from "../lib/channel.ts";
import type { CommandSpec, Parsed } from "../lib/cli.ts";
import { UsageError } from "../lib/cli.ts";
import { loadSettings } from "../lib/config.ts";
import type { Context } from "../lib/context.ts";
import {
  decodeOutput,
  encodeBase64,
  localSocketPath,
  OUTPUT_POLL_MS,
  type OutputReply,
} from "../lib/deputy.ts";
import { exitStatus } from "../lib/jobs.ts";
import { ROOT_OPTION } from "../lib/stateflags.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("run"),
  usage: ["om run [--root DIR] [--] COMMAND [ARGS...]", "mosrun [--] COMMAND [ARGS...]"],
  description:
    `Starts COMMAND through this node's om discover as a job: PID 1 of its own PID namespace
and leader of its own session, so that it can later be checkpointed and moved to another node.
Its standard output and error come back here as it writes them (byte for byte), standard input
is forwarded to it (end of file too), SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to om run are
delivered to it, and om run exits with its exit status (128+N when signal N killed it). A job
that does not handle SIGINT/SIGTERM/SIGHUP/SIGQUIT dies of it as it would outside a namespace.
om ps lists it with its job PID, the node it runs on and its home node.

Put -- before COMMAND when it has options of its own. om run talks to the daemon over the
local socket $OM_ROOT/omdiscd.sock (default /run/om), which only root may use for now: jobs of
other users need a design of user identity that is still to come. om run itself fails with 125
when it cannot start or follow the job (daemon not running, or gone); a command that
cannot be found exits 127, as in a shell.`,
  options: [ROOT_OPTION],
  args: [
    { name: "COMMAND", help: "the program to run as a job", complete: "none" },
    { name: "ARGS...", help: "its arguments", complete: "file" },
  ],
  examples: [
    { command: "om run -- sh -c 'echo hello; exit 3'", says: "prints hello, exits 3" },
    {
      command: "mosrun -- awk 'BEGIN {for (i=0; i<1e8; i++) s+=i; print s}'",
      says: "a CPU-bound job that can be moved with om migrate",
    },
    { command: "tar cf - dir | om run -- gzip > dir.tar.gz", says: "stdin and stdout go through" },
  ],
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const FORWARDED: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
/** Bytes of standard input per job.input request. */
const INPUT_CHUNK = 64 * 1024;

const json = (value: unknown) => encoder.encode(JSON.stringify(value));
const parseJson = <T>(bytes: Uint8Array): T => JSON.parse(decoder.decode(bytes));

/** Writes all of `bytes` to an output of this process (binary-safe; a gone reader ends it). */
async function writeAll(file: { write(p: Uint8Array): Promise<number> }, bytes: Uint8Array) {
  try {
    while (bytes.length > 0) bytes = bytes.subarray(await file.write(bytes));
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/** Forwards standard input to the job until end of file, then says end of file. */
async function forwardInput(
  client: ChannelClient,
  id: number,
  stdin: ReadableStream<Uint8Array>,
  done: Promise<unknown>,
): Promise<void> {
  const reader = stdin.getReader();
  void done.then(() => reader.cancel().catch(() => {}));
  try {
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      for (let i = 0; i < value.length; i += INPUT_CHUNK) {
        const data = encodeBase64(value.subarray(i, i + INPUT_CHUNK));
        await client.request("job.input", json({ id, data }), { timeoutMs: 0 });
      }
    }
    await client.request("job.input", json({ id, eof: true }));
  } catch {
    // The job ended (its id is gone) or the daemon went away: the output side reports it.
  } finally {
    reader.releaseLock();
  }
}

/** Runs the job and stands in for it until it ends. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  if (parsed.args.length === 0) throw new UsageError("Cannot run a job: no command given");
  const settings = await loadSettings(
    { root: parsed.options.root as string | undefined },
    ctx.env,
  );
  const path = localSocketPath(settings.root);
  const connect = () => connectChannel({ path, timeoutMs: 5000 });
  let output: ChannelClient;
  try {
    output = await connect();
  } catch {
    ctx.err(`om run: Cannot reach om discover at ${path}: is it running?\n`);
    return 125;
  }
  const clients: ChannelClient[] = [output];
  const listeners: [Deno.Signal, () => void][] = [];
  try {
    let id: number;
    try {
      const reply = await output.request(
        "job.run",
        json({ argv: parsed.args, cwd: Deno.cwd(), env: ctx.envAll() }),
      );
      id = parseJson<{ id: number }>(reply).id;
    } catch (error) {
      ctx.err(`om run: ${error instanceof Error ? error.message : error}\n`);
      return 125;
    }
    // Input and signals on connections of their own: a request waits for the one before it
    // on the same connection, and the output's long poll would hold them up.
    const [input, control] = await Promise.all([connect(), connect()]);
    clients.push(input, control);
    for (const signal of FORWARDED) {
      const forward = () =>
        void control.request("job.signal", json({ id, signal })).catch((error) =>
          ctx.err(`om run: Cannot deliver ${signal} to job ${id}: ${error.message}\n`)
        );
      Deno.addSignalListener(signal, forward);
      listeners.push([signal, forward]);
    }
    let ended!: () => void;
    const done = new Promise<void>((resolve) => ended = resolve);
    const feeding = forwardInput(input, id, ctx.stdin, done);
    let offset = 0;
    try {
      for (;;) {
        const reply = decodeOutput(
          parseJson<OutputReply>(
            await output.request("job.output", json({ id, offset }), {
              timeoutMs: OUTPUT_POLL_MS + 10_000,
            }),
          ),
        );
        for (const chunk of reply.chunks) {
          await writeAll(chunk.fd === 1 ? Deno.stdout : Deno.stderr, chunk.data);
        }
        offset = reply.offset;
        if (reply.exit) return exitStatus(reply.exit);
      }
    } catch (error) {
      ctx.err(
        `om run: Cannot follow job ${id}: ${error instanceof Error ? error.message : error}\n`,
      );
      return 125;
    } finally {
      ended();
      void feeding;
    }
  } finally {
    for (const [signal, forward] of listeners) Deno.removeSignalListener(signal, forward);
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}
