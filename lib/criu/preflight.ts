/**
 * Finding CRIU and checking it before anything is frozen: which binary (`$OM_CRIU`, else `criu` on
 * `PATH`), that `criu check` passes, that its version is recent enough (criu 3.17 fails `criu check`
 * on Linux 6.18 with "Unexpected rt vDSO area bounds"; 4.1.1 works), and whether the kernel lets
 * it track dirty memory (pre-copy rounds). Failures are CriuErrors of step `check` or `version`.
 */
import { checkArgs } from "./args.ts";
import { CriuError, logTail, stepFailure } from "./criuerror.ts";
import { type Criu, runCriu } from "./run.ts";

/**
 * Finds CRIU as om does: `$OM_CRIU` if set, else the first executable `criu` on `PATH`.
 * Returns `undefined` when there is none; whether it works is {@linkcode preflight}'s business.
 */
export function findCriu(env: (name: string) => string | undefined): string | undefined {
  const explicit = env("OM_CRIU");
  if (explicit) return explicit;
  for (const dir of (env("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const candidate = `${dir}/criu`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A CRIU version, from `criu --version`. */
export interface CriuVersion {
  major: number;
  minor: number;
  patch: number;
  /** As criu printed it ("4.1.1"). */
  text: string;
}

/** Reads `Version: 4.1.1` (or `4.1`) out of `criu --version`; `undefined` if absent. */
export function parseVersion(output: string): CriuVersion | undefined {
  const match = /^Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/m.exec(output);
  if (!match) return undefined;
  return {
    major: Number(match[1]),
    minor: Number(match[2]),
    patch: Number(match[3] ?? 0),
    text: match[0].replace(/^Version:\s*/, ""),
  };
}

/** What {@linkcode preflight} found. */
export interface Preflight {
  binary: string;
  version: CriuVersion;
  /** Whether `criu check --feature mem_dirty_track` passed (iterative pre-copy possible). */
  memDirtyTrack: boolean;
}

/**
 * Checks, before anything is frozen, that this CRIU works here: `criu check` passes and
 * `criu --version` is at least `minVersion` (default 4.0: 3.17 fails on kernel 6.18). With
 * `logDir`, the outputs go to `check.log` and `version.log` there. Throws CriuError.
 */
export async function preflight(
  criu: Criu,
  options: { logDir?: string; minVersion?: readonly [number, number] } = {},
): Promise<Preflight> {
  const [minMajor, minMinor] = options.minVersion ?? [4, 0];
  const keep = async (name: string, text: string) => {
    if (!options.logDir) return undefined;
    const path = `${options.logDir}/${name}`;
    await Deno.writeTextFile(path, text);
    return path;
  };
  const check = await runCriu(criu, { step: "check", what: "use CRIU", args: checkArgs() });
  const checkLog = await keep("check.log", check.output);
  if (check.code !== 0) {
    throw await stepFailure("use CRIU", {
      step: "check",
      exitCode: check.code,
      logPath: checkLog,
      output: check.output,
    });
  }

  const version = await runCriu(criu, { step: "version", what: "use CRIU", args: ["--version"] });
  const versionLog = await keep("version.log", version.output);
  const parsed = parseVersion(version.output);
  if (version.code !== 0 || !parsed) {
    throw await stepFailure("use CRIU", {
      step: "version",
      exitCode: version.code,
      logPath: versionLog,
      output: version.output,
    });
  }
  if (parsed.major < minMajor || (parsed.major === minMajor && parsed.minor < minMinor)) {
    throw new CriuError(
      `Cannot use CRIU "${criu.binary}": version ${parsed.text} is older than ${minMajor}.${minMinor}`,
      {
        step: "version",
        exitCode: 0,
        logPath: versionLog,
        hint: "install CRIU 4 or later, or set OM_CRIU (scripts/install-criu)",
        logTail: logTail(version.output),
      },
    );
  }
  return { binary: criu.binary, version: parsed, memDirtyTrack: await featureMemDirtyTrack(criu) };
}

/** Whether the kernel lets CRIU track dirty memory (`criu check --feature mem_dirty_track`). */
export async function featureMemDirtyTrack(criu: Criu): Promise<boolean> {
  const result = await runCriu(criu, {
    step: "check",
    what: "check CRIU's features",
    args: checkArgs("mem_dirty_track"),
  });
  return result.code === 0;
}
