/**
 * `om run` (mosrun): runs a command as a job of the local daemon, so that it can move (or starts
 * it on another node: mosrun's options, lib/jobs/runoptions.ts), and stands in for it at home: the job's output comes here, this terminal's input goes there, the
 * signals sent to `om run` reach it, and its exit status becomes ours. Protocol: PROTOCOL.md §10.
 */
import { jsonBytes, jsonOf } from "../lib/base/json.ts";
import { type ChannelClient, RemoteError } from "../lib/channel/client.ts";
import { connectLocal, localFailure } from "../lib/jobs/localauth.ts";
import { type CommandSpec, type Parsed, renderHelp } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { decodeOutput, encodeBase64, type OutputReply } from "../lib/jobs/jobwire.ts";
import { OUTPUT_POLL_MS, type RunRequest } from "../lib/jobs/deputy.ts";
import { callerLockOf, parseRunOptions, type RunOptions } from "../lib/jobs/runoptions.ts";
import { exitStatus } from "../lib/jobs/table.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("run"),
  usage: [
    "om run [-h | -NODE | -jLIST] [-F] [-l|-L|-k] [-c|-i] [-n|-s|-f] [--root DIR] [--] COMMAND [ARGS...]",
    "mosrun [options] [--] COMMAND [ARGS...]",
  ],
  description:
    `Starts COMMAND through this node's om discover as a job: PID 1 of its own PID namespace
and leader of its own session, so that it can later be checkpointed and moved to another node.
Its standard output and error come back here as it writes them (byte for byte), standard input
is forwarded to it (end of file too), SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to om run are
delivered to it, and om run exits with its exit status (128+N when signal N killed it). A job
that does not handle SIGINT/SIGTERM/SIGHUP/SIGQUIT dies of it as it would outside a namespace.
om ps lists it with its job PID, the node it runs on and its home node (this one).

Options are mosrun's, each on its own; they end at -- or at the first word that is not one,
so 'om run sh -c CMD' passes -c to sh. Of -h/-NODE/-j, of -l/-L/-k, of -c/-i and of -n/-s/-f
the last one given counts. -NODE is a node id in decimal (-3): the job starts there, moved
while it has not yet run a single instruction of COMMAND; its output, input, signals and exit
status still go through this om run. -jLIST draws one node at random among those of LIST that
are up (ids and ranges: -j2-4,7) and tries the others if it cannot start there. When no node
works, om run fails with 125 and says why, and nothing of COMMAND ran; with -F the job runs
here instead. A node that is this one means here.

The lock: a locked job stays where it started (only om migrate moves it). A plain 'om run'
starts an unlocked job, as an ordinary openMosix process was; -h and a named node lock it
unless -l is given. Invoked as mosrun, om keeps mosrun's default: locked when a node was named
or no decay option (-n, -s, -f) was given, unless -l. -k keeps the caller's lock: inside an om
job ($OM_JOB and $OM_JOB_LOCK are in every job's environment) that job's lock; outside one,
locked, since the caller cannot move at all. -c/-i and -n/-s/-f are hints kept with the job
(om ps --json shows them under "policy"); without one, decay is slow.

om run talks to the daemon over the local socket $OM_ROOT/omdiscd.sock (default /run/om),
which every user may use: it proves who it is with a file it makes in $OM_ROOT/users, and the
job runs as that user (root's as root), in the current directory (one the user may enter) with
om run's environment, in a mount namespace of its own for a user other than root (so that CRIU
can checkpoint it; mounts made later on the host do not reach it). Only the job's user and root
may follow, signal or move it. om run itself fails with 125 when it cannot start or follow the
job (daemon not running or gone, or no node to start on); a command that cannot be found exits
127, as in a shell. The runners nomig, runhome, runon, cpujob, iojob, nodecay, slowdecay and fastdecay are
om run with one preset each.`,
  options: [
    { name: "home", flags: ["-h"], help: "stay at home (this node), locked" },
    {
      name: "list",
      flags: ["-j"],
      value: "LIST",
      help: "start on a random node of LIST (ids and ranges: -j2-4,7), locked; -NODE: on NODE",
      complete: "none",
    },
    { name: "fallback", flags: ["-F"], help: "run here when the node is unavailable, not fail" },
    { name: "unlock", flags: ["-l"], help: "unlocked: the job may move" },
    { name: "lock", flags: ["-L"], help: "locked: the job stays where it starts" },
    {
      name: "keep",
      flags: ["-k"],
      help: "keep the caller's lock ($OM_JOB_LOCK; locked outside a job)",
    },
    { name: "cpu", flags: ["-c"], help: "a cpu-bound job" },
    { name: "io", flags: ["-i"], help: "an io-bound job" },
    { name: "nodecay", flags: ["-n"], help: "no decay of its load history" },
    { name: "slowdecay", flags: ["-s"], help: "slow decay (the default)" },
    { name: "fastdecay", flags: ["-f"], help: "fast decay" },
    ROOT_OPTION,
  ],
  helpFlags: ["--help"],
  rawArgs: true,
  args: [
    { name: "COMMAND", help: "the program to run as a job", complete: "none" },
    { name: "ARGS...", help: "its arguments", complete: "file" },
  ],
  examples: [
    { command: "om run -- sh -c 'echo hello; exit 3'", says: "prints hello, exits 3" },
    {
      command: "om run awk 'BEGIN {for (i=0; i<1e8; i++) s+=i; print s}'",
      says: "an unlocked CPU-bound job that can be moved with om migrate",
    },
    { command: "om run -2 hostname", says: "runs hostname on node 2, prints here" },
    { command: "om run -j2-4,7 -F make", says: "on one of nodes 2, 3, 4, 7 that is up, or here" },
    { command: "mosrun -c -l ./simulate", says: "mosrun's spelling: cpu-bound, unlocked" },
    { command: "tar cf - dir | om run -- gzip > dir.tar.gz", says: "stdin and stdout go through" },
  ],
};

const FORWARDED: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
/** Bytes of standard input per job.input request. */
const INPUT_CHUNK = 64 * 1024;

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
        await client.request("job.input", jsonBytes({ id, data }), { timeoutMs: 0 });
      }
    }
    await client.request("job.input", jsonBytes({ id, eof: true }));
  } catch {
    // The job ended (its id is gone) or the daemon went away: the output side reports it.
  } finally {
    reader.releaseLock();
  }
}

/** Reads mosrun's options (as om run or as mosrun) and runs the job. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const options = parseRunOptions(parsed.args, {
    mosrun: ctx.invokedAs === "mosrun",
    callerLock: callerLockOf(ctx.env),
  });
  if (options.help) {
    ctx.out(renderHelp(spec));
    return 0;
  }
  return await runJob(options, ctx);
}

/** Runs the job and stands in for it until it ends (om run and the runners). */
export async function runJob(options: RunOptions, ctx: Context): Promise<number> {
  const settings = await loadSettings({ root: options.root }, ctx.env);
  const connect = () => connectLocal(settings.root, { timeoutMs: 5000 });
  let output: ChannelClient;
  try {
    output = await connect();
  } catch (error) {
    ctx.err(`om run: ${localFailure(error, settings.root)}\n`);
    return 125;
  }
  const clients: ChannelClient[] = [output];
  const listeners: [Deno.Signal, () => void][] = [];
  try {
    let id: number;
    // Listening from the start: a signal that comes before the job runs (or before its control
    // connection is made) waits, and goes to the job then, instead of killing om run and leaving
    // the job without its terminal.
    let to: { id: number; control: ChannelClient } | undefined = undefined;
    const waiting: Deno.Signal[] = [];
    const deliver = (
      signal: Deno.Signal,
      { id, control }: { id: number; control: ChannelClient },
    ) =>
      void control.request("job.signal", jsonBytes({ id, signal })).catch((error) => {
        // A signal that came as the job ended has nothing left to reach: its end is reported.
        if (error instanceof RemoteError && / it has ended$/.test(error.error)) return;
        ctx.err(`om run: Cannot deliver ${signal} to job ${id}: ${error.message}\n`);
      });
    for (const signal of FORWARDED) {
      const forward = () => to ? deliver(signal, to) : void waiting.push(signal);
      Deno.addSignalListener(signal, forward);
      listeners.push([signal, forward]);
    }
    try {
      const request: RunRequest = {
        argv: options.args,
        cwd: Deno.cwd(),
        env: ctx.envAll(),
        policy: options.policy,
        ...(options.place ? { place: options.place } : {}),
      };
      // Starting elsewhere is a migration (or several): longer than a request usually may take.
      const reply = await output.request("job.run", jsonBytes(request), {
        timeoutMs: options.place ? 0 : undefined,
      });
      id = jsonOf<{ id: number }>(reply).id;
    } catch (error) {
      // The daemon's own words when it answered (a node that cannot take the job, ...).
      const text = error instanceof RemoteError
        ? error.error
        : error instanceof Error
        ? error.message
        : String(error);
      ctx.err(`om run: ${text}\n`);
      return 125;
    }
    // Input and signals on connections of their own: a request waits for the one before it
    // on the same connection, and the output's long poll would hold them up.
    const opened = await Promise.allSettled([connect(), connect()]);
    for (const each of opened) if (each.status === "fulfilled") clients.push(each.value);
    const failed = opened.find((each) => each.status === "rejected");
    if (failed) {
      // Without its input and signals the job would run on unfollowed: it is stopped, and the
      // user is told, rather than left with a job no terminal reaches.
      const killed = await output.request("job.signal", jsonBytes({ id, signal: "SIGKILL" }))
        .then(() => "it was killed", (error) => `and it could not be killed: ${error.message}`);
      const why = localFailure(failed.reason, settings.root);
      ctx.err(`om run: Cannot follow job ${id}: ${why}; ${killed}\n`);
      return 125;
    }
    const [input, control] = clients.slice(1);
    to = { id, control };
    for (const signal of waiting.splice(0)) deliver(signal, to);
    let ended!: () => void;
    const done = new Promise<void>((resolve) => ended = resolve);
    const feeding = forwardInput(input, id, ctx.stdin, done);
    let offset = 0;
    try {
      for (;;) {
        const reply = decodeOutput(
          jsonOf<OutputReply>(
            await output.request("job.output", jsonBytes({ id, offset }), {
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
