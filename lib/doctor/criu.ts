/**
 * CRIU and the kernel features om's moves use: the CRIU the daemon would run (its OM_CRIU, else
 * criu on its PATH: lib/criu/preflight.ts findCriu), `criu check` passing and its version 4 or
 * later (what om's preflight demands before it freezes a job), dirty-memory tracking (pre-copy:
 * `criu check --feature mem_dirty_track`) and userfaultfd (`criu check --feature uffd`, or the
 * kernel's vm.unprivileged_userfaultfd without a working CRIU).
 */
import { checkArgs } from "../criu/args.ts";
import { findCriu, parseVersion } from "../criu/preflight.ts";
import { type Criu, runCriu } from "../criu/run.ts";
import { type Check, missed, passed, unchecked } from "./report.ts";
import type { DoctorInputs, Environment } from "./inputs.ts";

const GET_CRIU = "install CRIU 4 or later (README, Getting CRIU); from a clone of om, " +
  "scripts/install-criu prints the path of one: set OM_CRIU to it in the daemon's environment";

/** The last line of what criu printed, for a one-line finding. */
function lastLine(output: string): string {
  return output.trim().split("\n").at(-1)?.trim() || "no output";
}

/** Whether `criu check --feature NAME` passes. */
async function feature(criu: Criu, name: string): Promise<boolean> {
  const result = await runCriu(criu, {
    step: "check",
    what: "check CRIU's features",
    args: checkArgs(name),
  });
  return result.code === 0;
}

/** The CRIU checks: criu, pre-copy, userfaultfd. `env` is the daemon's environment, or ours. */
export async function checkCriu(inputs: DoctorInputs, env: Environment): Promise<Check[]> {
  const binary = findCriu(env.get);
  const source = env.get("OM_CRIU") ? `${env.whose} OM_CRIU` : `${env.whose} PATH`;
  if (!binary) {
    return [
      missed("criu", true, `no CRIU: no OM_CRIU and no criu on ${env.whose} PATH`, GET_CRIU),
      notChecked("pre-copy"),
      await userfaultfdSysctl(inputs),
    ];
  }
  if (inputs.uid !== 0) {
    return [
      unchecked(
        "criu",
        `${binary} (${source}) not checked: criu check needs root`,
        "run om doctor as root",
      ),
      notChecked("pre-copy"),
      await userfaultfdSysctl(inputs),
    ];
  }
  const criu: Criu = { binary, now: inputs.now };
  let check, version;
  try {
    check = await runCriu(criu, { step: "check", what: "check CRIU", args: checkArgs() });
    version = await runCriu(criu, { step: "version", what: "check CRIU", args: ["--version"] });
  } catch (error) {
    return [
      missed(
        "criu",
        true,
        `cannot run ${binary} (${source}): ${(error as Error).message}`,
        GET_CRIU,
      ),
      notChecked("pre-copy"),
      await userfaultfdSysctl(inputs),
    ];
  }
  const parsed = version.code === 0 ? parseVersion(version.output) : undefined;
  const named = `CRIU ${parsed?.text ?? "(no version)"} at ${binary} (${source})`;
  if (check.code !== 0) {
    return [
      missed("criu", true, `${named}: criu check fails: ${lastLine(check.output)}`, GET_CRIU),
      notChecked("pre-copy"),
      await userfaultfdSysctl(inputs),
    ];
  }
  if (!parsed || parsed.major < 4) {
    return [
      missed("criu", true, `${named}: older than 4.0, which om needs`, GET_CRIU),
      notChecked("pre-copy"),
      await userfaultfdSysctl(inputs),
    ];
  }
  const precopy = await feature(criu, "mem_dirty_track");
  const uffd = await feature(criu, "uffd");
  return [
    passed("criu", `${named}: criu check passes`),
    precopy
      ? passed("pre-copy", "dirty-memory tracking: a job's memory is copied while it runs")
      : missed(
        "pre-copy",
        false,
        "no dirty-memory tracking (criu check --feature mem_dirty_track fails): a job is frozen " +
          "for the whole copy of its memory",
        "a kernel with soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY; most distributions' " +
          "kernels have it, some virtual machines' do not)",
      ),
    uffd ? passed("userfaultfd", `userfaultfd: criu check --feature uffd passes`) : missed(
      "userfaultfd",
      false,
      "no userfaultfd (criu check --feature uffd fails): no lazy (post-copy) restores",
      "a kernel with CONFIG_USERFAULTFD",
    ),
  ];
}

/** A feature that needs a working CRIU to be checked. */
function notChecked(name: string): Check {
  return unchecked(name, "not checked: no working CRIU", "fix the criu check first");
}

/** userfaultfd as the kernel shows it without CRIU: its sysctl exists only when it is built in. */
async function userfaultfdSysctl(inputs: DoctorInputs): Promise<Check> {
  const path = `${inputs.settings.proc}/sys/vm/unprivileged_userfaultfd`;
  try {
    const value = (await Deno.readTextFile(path)).trim();
    return passed(
      "userfaultfd",
      `the kernel has userfaultfd (vm.unprivileged_userfaultfd = ${value})`,
    );
  } catch {
    return missed(
      "userfaultfd",
      false,
      `no userfaultfd in this kernel (no ${path})`,
      "a kernel with CONFIG_USERFAULTFD",
    );
  }
}
