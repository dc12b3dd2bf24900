/**
 * What a command is handed to talk to the person and the system, so that every command runs
 * in-process in a test with captured output, its own environment and its own clock.
 */

/** The command's view of the outside world. */
export interface Context {
  /** Writes to standard output. */
  out(text: string): void;
  /** Writes to standard error. */
  err(text: string): void;
  /** Reads an environment variable. */
  env(name: string): string | undefined;
  /** The whole environment, for starting children. */
  envAll(): Record<string, string>;
  /** Milliseconds since the epoch (injectable for tests). */
  now(): number;
  /** Standard input. */
  stdin: ReadableStream<Uint8Array>;
  /** True when standard output is a terminal. */
  isTerminal: boolean;
  /** The name om was invoked by (`mosrun` through a link); undefined means `om`. */
  invokedAs?: string;
}

const encoder = new TextEncoder();

/** Writes everything; a reader that went away (`om lab up | head -1`) ends the output quietly. */
function writeAll(fd: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(fd.writeSync(bytes));
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/** The real context of a process. */
export function processContext(): Context {
  return {
    out: (text) => writeAll(Deno.stdout, text),
    err: (text) => writeAll(Deno.stderr, text),
    env: (name) => Deno.env.get(name),
    envAll: () => Deno.env.toObject(),
    now: () => Date.now(),
    stdin: Deno.stdin.readable,
    isTerminal: Deno.stdout.isTerminal(),
  };
}

/** A context with captured output, for tests. */
export function captureContext(
  env: Record<string, string> = {},
  options: { now?: () => number; stdin?: string } = {},
): Context & { stdout: () => string; stderr: () => string } {
  let stdout = "";
  let stderr = "";
  const input = encoder.encode(options.stdin ?? "");
  return {
    out: (text) => void (stdout += text),
    err: (text) => void (stderr += text),
    env: (name) => env[name],
    envAll: () => ({ ...env }),
    now: options.now ?? (() => Date.now()),
    stdin: new ReadableStream({
      start(controller) {
        if (input.length) controller.enqueue(input);
        controller.close();
      },
    }),
    isTerminal: false,
    stdout: () => stdout,
    stderr: () => stderr,
  };
}
