/**
 * A job's stdout and stderr, pumped into its output log (lib/jobs/table.ts) by the deputy. While
 * the job's process runs, each chunk waits for room in the log (its high water, its user's budget:
 * lib/jobs/outputbudget.ts), so a job whose output nobody reads blocks on its full pipe. Once the
 * process has ended nothing waits any more: what is left in the pipes is read into the log whatever
 * is unread, so that the job's end is recorded at once and nothing stays tied to a process that is
 * gone (its PID may soon name another). That rest is small: every process of the job's PID
 * namespace is dead once its PID 1 is, and a pipe holds 64 KiB (1 MiB at most, the largest a user
 * may make it). Only a descriptor the job passed to a process outside it could keep a pipe open:
 * after the end, a pipe is let go once it has given AFTER_END_BYTES or stayed open AFTER_END_MS.
 */
import type { Clock } from "../base/clock.ts";
import type { OutputFd, OutputLog } from "./table.ts";

/** How long a job's pipe may stay open after its process ended. */
export const AFTER_END_MS = 2000;
/** How much a job's pipe may give after its process ended. */
export const AFTER_END_BYTES = 2 * 1024 * 1024;

/** A job's output pipes, as a child process gives them. */
export interface OutputPipes {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
}

/**
 * Pumps `pipes` into `log` until both end (see the header); `ended` resolves when the job's
 * process has ended. Never throws: a pipe that fails is a pipe that ended.
 */
export async function pumpOutput(
  log: OutputLog,
  pipes: OutputPipes,
  options: {
    readonly ended: Promise<unknown>;
    readonly clock: Clock;
    readonly afterEndMs?: number;
    readonly afterEndBytes?: number;
  },
): Promise<void> {
  const afterEndMs = options.afterEndMs ?? AFTER_END_MS;
  const afterEndBytes = options.afterEndBytes ?? AFTER_END_BYTES;
  let ended = false;
  const end = options.ended.then(() => void (ended = true), () => void (ended = true));
  const pump = async (stream: ReadableStream<Uint8Array>, fd: OutputFd) => {
    const reader = stream.getReader();
    let finished = false;
    let stopTimer = () => {};
    void end.then(() => {
      if (finished) return;
      stopTimer = options.clock.after(afterEndMs, () => void reader.cancel().catch(() => {}));
    });
    let after = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        if (ended) {
          after += value.length;
          if (after > afterEndBytes) {
            await reader.cancel().catch(() => {});
            return;
          }
        }
        log.append(fd, value);
        if (!ended) await Promise.race([log.room(), end]);
      }
    } catch {
      // A pipe that fails has ended.
    } finally {
      finished = true;
      stopTimer();
      reader.releaseLock();
    }
  };
  await Promise.all([pump(pipes.stdout, 1), pump(pipes.stderr, 2)]);
}
