/**
 * Shared by the commands' tests: a private state tree (OM_ROOT, OM_PROC, an empty OM_CONFIG) in a
 * temporary directory, and a way to run a command in-process exactly as main.ts runs it.
 */
import { type CommandModule, runCommand } from "../../commands/index.ts";
import { captureContext } from "../../lib/cli/context.ts";
import { resolveStatePaths, type StatePaths } from "../../lib/state/tree.ts";

/**
 * A temporary state tree and its environment; `cleanup` removes it, as does leaving the scope of
 * `await using box = await sandbox(...)`.
 */
export interface Sandbox extends AsyncDisposable {
  readonly dir: string;
  readonly env: Record<string, string>;
  readonly paths: StatePaths;
  /** Writes `text` to a file of the sandbox and returns its path. */
  file(name: string, text: string): Promise<string>;
  cleanup(): Promise<void>;
}

/** Makes a sandbox; `kernel` adds <OM_PROC>/hpc/admin so that om sees an openMosix kernel. */
export async function sandbox(
  prefix: string,
  options: { kernel?: boolean; env?: Record<string, string> } = {},
): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: `om-${prefix}-` });
  await Deno.writeTextFile(`${dir}/om.conf`, "");
  const env: Record<string, string> = {
    OM_ROOT: `${dir}/root`,
    OM_PROC: `${dir}/proc`,
    OM_CONFIG: `${dir}/om.conf`,
    ...options.env,
  };
  if (options.kernel) await Deno.mkdir(`${dir}/proc/hpc/admin`, { recursive: true });
  const paths = resolveStatePaths({ root: env.OM_ROOT, proc: env.OM_PROC, alpha: false });
  return {
    dir,
    env,
    paths,
    file: async (name, text) => {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      return `${dir}/${name}`;
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Runs a program (the launcher, a link to it) with `env`; returns its exit code and output. */
export async function execute(
  program: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args: [...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

/** Runs a command in-process as main.ts does; returns its exit code and what it printed. */
export async function invoke(
  command: Pick<CommandModule, "spec" | "run">,
  argv: readonly string[],
  env: Record<string, string>,
  stdin?: string,
): Promise<{ code: number; out: string; err: string }> {
  const ctx = captureContext(env, { stdin });
  const code = await runCommand(command, argv, ctx);
  return { code, out: ctx.stdout(), err: ctx.stderr() };
}
