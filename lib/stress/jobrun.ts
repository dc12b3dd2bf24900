/**
 * One job of `om stress`, started as a person would start it: `om run -- ARGV` as a child process
 * of om stress (so through this node's om discover, which makes it a job whose home is here). Its
 * standard output comes back through `om run` and is kept (or only checksummed, for the stream),
 * its standard input is fed by om stress in even pieces over the time the job should last, and
 * `om run`'s exit status is the job's. The job runs in `/`, which every node has: a job restored
 * on another node needs its working directory there.
 */
import type { Clock } from "../base/clock.ts";
import { omCommand } from "../base/selfexec.ts";
import { Cksum } from "./cksum.ts";
import type { JobPlan, Produced } from "./workload.ts";

/** What a job's `om run` left when it ended. */
export interface JobEnd {
  readonly produced: Produced;
  /** The end of what `om run` wrote on its standard error (its own messages, the job's). */
  readonly stderr: string;
}

/** A running `om run`. */
export interface JobProcess {
  /** Resolves when `om run` has exited and its output is read. */
  readonly done: Promise<JobEnd>;
  /** Sends `om run` a signal (it passes SIGINT and SIGTERM on to the job). */
  kill(signal: Deno.Signal): void;
}

/** Starts a job; `feedMs` spreads its standard input (if any) over that many milliseconds. */
export type StartJob = (plan: JobPlan, feedMs: number) => JobProcess;

/** The standard output kept of a job at most (beyond it the rest is only checksummed). */
export const MAX_KEPT = 64 * 1024 * 1024;
/** The standard error kept of a job (its end). */
const MAX_STDERR = 16 * 1024;
/** Pieces the standard input is fed in. */
const FEED_PIECES = 32;

/** Reads a stream to its end: the whole text (up to MAX_KEPT) and the checksum. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  keepText: boolean,
): Promise<{ text?: string; sum: Cksum }> {
  const sum = new Cksum();
  const decoder = new TextDecoder();
  let text = "";
  let kept = 0;
  for await (const chunk of stream) {
    sum.update(chunk);
    if (keepText && kept < MAX_KEPT) {
      text += decoder.decode(chunk, { stream: true });
      kept += chunk.length;
    }
  }
  if (keepText) text += decoder.decode();
  return keepText ? { text, sum } : { sum };
}

/** Keeps the last MAX_STDERR characters of a stream. */
async function tail(stream: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    text = (text + decoder.decode(chunk, { stream: true })).slice(-MAX_STDERR);
  }
  return text;
}

/** Writes `bytes` to `stdin` in FEED_PIECES pieces spread over `feedMs`, then closes it. */
async function feed(
  stdin: WritableStream<Uint8Array>,
  bytes: Uint8Array,
  feedMs: number,
  clock: Pick<Clock, "sleep">,
): Promise<void> {
  const writer = stdin.getWriter();
  try {
    const piece = Math.ceil(bytes.length / FEED_PIECES);
    for (let at = 0; at < bytes.length; at += piece) {
      if (at > 0) await clock.sleep(feedMs / FEED_PIECES);
      await writer.write(bytes.subarray(at, at + piece));
    }
    await writer.close();
  } catch {
    // om run ended early (its exit status says why).
  }
}

/**
 * The real {@linkcode StartJob}: `om run` (this same om, lib/base/selfexec.ts) with `env` (its
 * OM_ROOT names this node's state tree), in `/`.
 */
export function omRunStarter(options: {
  readonly env: Record<string, string>;
  readonly clock: Pick<Clock, "sleep">;
}): StartJob {
  return (plan, feedMs) => {
    const [program, ...args] = omCommand(["run", "--", ...plan.argv]);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args,
        cwd: "/",
        env: options.env,
        clearEnv: true,
        stdin: plan.stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      // As om run says it could not start a job: 125, and why.
      const produced = { text: "", sum: new Cksum().value(), exitCode: 125 };
      const stderr = `Cannot start om run (${program}): ${(error as Error).message}`;
      return { done: Promise.resolve({ produced, stderr }), kill: () => {} };
    }
    const feeding = plan.stdin
      ? feed(child.stdin, plan.stdin, feedMs, options.clock)
      : Promise.resolve();
    const done = (async (): Promise<JobEnd> => {
      const [out, stderr, status] = await Promise.all([
        collect(child.stdout, plan.expected.kind === "text"),
        tail(child.stderr),
        child.status,
      ]);
      await feeding;
      return {
        produced: {
          ...(out.text !== undefined ? { text: out.text } : {}),
          sum: out.sum.value(),
          exitCode: status.code,
        },
        stderr,
      };
    })();
    return {
      done,
      kill(signal) {
        try {
          child.kill(signal);
        } catch {
          // it has ended
        }
      },
    };
  };
}
