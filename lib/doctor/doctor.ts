/**
 * `om doctor`'s checks, in the order they are shown: the daemon and its ports, the network, the
 * key, CRIU and the kernel's features, the page link's cipher, the programs jobs start with, the
 * state tree, cgroups (om lab's, om exec's).
 * Where the daemon's environment can be read (root), CRIU and PATH are looked for as the daemon
 * looks for them; otherwise in om doctor's own.
 */
import { checkDaemon, checkPorts } from "./daemon.ts";
import { checkCriu } from "./criu.ts";
import { checkMulticast } from "./network.ts";
import { checkCgroups, checkKey, checkStateTree, checkTools } from "./node.ts";
import { parseMountinfo } from "./mounts.ts";
import { checkExecCgroup, checkPageCipher } from "./speedups.ts";
import { type Check, type DoctorReport, doctorReport, unchecked } from "./report.ts";
import type { DoctorInputs, Environment } from "./inputs.ts";

/** Runs every check of this node. */
export async function runDoctor(inputs: DoctorInputs): Promise<DoctorReport> {
  const daemon = await checkDaemon(inputs);
  const env: Environment = daemon.env ?? {
    get: inputs.env,
    whose: daemon.pid === undefined ? "this shell's" : "om doctor's (not the daemon's: not root)",
  };
  const mounts = parseMountinfo(
    await Deno.readTextFile(`${inputs.settings.proc}/self/mountinfo`).catch(() => ""),
  );
  const checks: Check[] = [
    daemon.check,
    ...await checkPorts(inputs, daemon.pid),
    await checkMulticast(inputs),
    await checkKey(inputs),
    ...await checkCriu(inputs, env),
    checkPageCipher(),
    await checkTools(env),
    await checkStateTree(inputs, mounts),
    await checkCgroups(env, mounts),
    daemon.pid === undefined
      ? await checkExecCgroup(`${inputs.settings.proc}/self`, "om doctor (no daemon runs)")
      : await checkExecCgroup(`${inputs.settings.proc}/${daemon.pid}`, "the daemon"),
  ];
  if (inputs.uid !== 0) {
    checks.push(
      unchecked(
        "user",
        `om doctor runs as uid ${inputs.uid}: the checks that need root are partial`,
        "run it as root (sudo om doctor)",
      ),
    );
  }
  return doctorReport(checks);
}
