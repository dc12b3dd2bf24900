/**
 * A stopped job's stdin across a migration (PROTOCOL.md §11, "Stdin"): CRIU does not refill an
 * inherited pipe, so the bytes the job had not read are taken out before the images leave
 * (drainStdin) and written first into its new pipe at the target, or put back (reopenStdin) when
 * the move fails; and the job's processes are continued where a dump left them stopped.
 */
import { descendants } from "../base/procs.ts";
import {
  identifyProcess,
  isSameProcess,
  type ProcessIdentity,
  signalProcess,
} from "../jobs/processid.ts";
import { withTimeout } from "../base/time.ts";

/**
 * The bytes left in a stopped job's stdin pipe, read through /proc/<pid>/fd/0 (a new read end
 * of the same pipe). The caller has closed the only write end first, so the read ends with end
 * of file once the pipe is empty; a writer left elsewhere makes it fail after `timeoutMs`.
 */
export async function drainStdin(pid: number, timeoutMs = 5000): Promise<Uint8Array> {
  const file = await Deno.open(`/proc/${pid}/fd/0`, { read: true });
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    const reading = (async () => {
      const buffer = new Uint8Array(65536);
      for (;;) {
        const n = await file.read(buffer);
        if (n === null) return;
        parts.push(buffer.slice(0, n));
        size += n;
      }
    })();
    await withTimeout(
      reading,
      timeoutMs,
      "the job's stdin pipe has another writer: no end of file",
    );
  } finally {
    try {
      file.close();
    } catch { /* closed */ }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/**
 * A new write end of a job's stdin pipe, opened through /proc/<pid>/fd/0, with `data` (the
 * bytes drainStdin took out) written first: a failed migration puts them back this way.
 */
export async function reopenStdin(
  pid: number,
  data: Uint8Array,
): Promise<WritableStreamDefaultWriter<Uint8Array>> {
  const file = await Deno.open(`/proc/${pid}/fd/0`, { write: true });
  const writer = file.writable.getWriter();
  if (data.length) void writer.write(data).catch(() => {});
  return writer;
}

/**
 * Continues every process of the tree rooted at `root` (a dump or a restore left them stopped),
 * if `root` is still that process: nothing is sent to a PID that has changed hands. Each
 * descendant is named as it is listed and checked again right before its signal
 * (lib/jobs/processid.ts).
 */
export async function continueTree(root: ProcessIdentity | undefined): Promise<void> {
  if (!root || !isSameProcess(root)) return;
  const tree = [
    root,
    ...(await descendants(root.pid)).flatMap((pid) => identifyProcess(pid) ?? []),
  ];
  for (const who of tree) {
    try {
      signalProcess(who, "SIGCONT");
    } catch { /* not ours to signal: nothing to continue */ }
  }
}
