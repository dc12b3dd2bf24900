import assert from "node:assert/strict";
import { INSTALL_SCRIPT, provideCriu } from "../../../lib/lab/criu.ts";
import { tempDir } from "../../tools/tempdir.ts";

const now = () => performance.now();

/** Writes an executable sh script. */
async function script(path: string, body: string): Promise<string> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

/** A criu that passes om's preflight (check, version, mem_dirty_track) as `version`. */
const fakeCriu = (version: string) =>
  `case "$*" in\n  "check") echo "Looks good." ;;\n  "--version") echo "Version: ${version}" ;;\n` +
  `  *) exit 1 ;;\nesac`;

Deno.test("provideCriu: an OM_CRIU given is used as given, and the script is not run", async () => {
  await using dir = await tempDir("labcriu");
  const marker = `${dir.path}/ran`;
  const install = await script(`${dir.path}/install`, `touch ${marker}; echo /elsewhere/criu`);
  const env = (name: string) => ({ OM_CRIU: "/no/such/criu", PATH: "/usr/bin:/bin" })[name];
  assert.deepEqual(await provideCriu({ env, now, script: install }), {
    binary: "/no/such/criu",
    source: "given",
  });
  await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
});

Deno.test("provideCriu: the script's last line is the CRIU; its progress goes to the log", async () => {
  await using dir = await tempDir("labcriu");
  // It sees the caller's PATH and an empty OM_CRIU (whatever this process's environment holds).
  const install = await script(
    `${dir.path}/install`,
    `echo "install-criu: fetching CRIU" >&2\necho "PATH=$PATH OM_CRIU=[$OM_CRIU]" >${dir.path}/seen\n` +
      `echo noise\necho /opt/criu/bin/criu`,
  );
  const logged: string[] = [];
  const env = (name: string) => ({ PATH: "/usr/sbin:/usr/bin:/sbin:/bin" })[name];
  assert.deepEqual(
    await provideCriu({ env, now, script: install, log: (line) => logged.push(line) }),
    { binary: "/opt/criu/bin/criu", source: "script" },
  );
  assert.deepEqual(logged, ["fetching CRIU"]);
  assert.equal(
    await Deno.readTextFile(`${dir.path}/seen`),
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin OM_CRIU=[]\n",
  );
});

Deno.test("provideCriu: a failing script's last word is the error", async () => {
  await using dir = await tempDir("labcriu");
  const install = await script(
    `${dir.path}/install`,
    `echo "install-criu: fetching" >&2\necho "install-criu: Cannot install CRIU: no apt-get" >&2\n` +
      "exit 1",
  );
  await assert.rejects(provideCriu({ env: () => undefined, now, script: install }), {
    message: `Cannot provide CRIU for the lab's nodes: ${install}: Cannot install CRIU: no apt-get`,
  });
});

Deno.test("provideCriu: without the script, a criu on PATH that passes om's preflight", async () => {
  await using dir = await tempDir("labcriu");
  const missing = `${dir.path}/no-script`;
  const bin = `${dir.path}/bin`;
  await Deno.mkdir(bin);
  const env = (name: string) => ({ PATH: bin })[name];
  await assert.rejects(provideCriu({ env, now, script: missing }), {
    message: `Cannot provide CRIU for the lab's nodes: no criu on PATH, and this om has no ` +
      `${missing} to install one: install CRIU 4 or later (README, Deploying), set OM_CRIU, or ` +
      "run om lab up from a clone of om",
  });
  await script(`${bin}/criu`, fakeCriu("3.17.1"));
  await assert.rejects(
    provideCriu({ env, now, script: missing }),
    /^Error: Cannot provide CRIU for the lab's nodes: Cannot use CRIU ".*": version 3\.17\.1 is older than 4\.0; install CRIU 4 or later, or set OM_CRIU$/,
  );
  await script(`${bin}/criu`, fakeCriu("4.1.1"));
  assert.deepEqual(await provideCriu({ env, now, script: missing }), {
    binary: `${bin}/criu`,
    source: "path",
  });
});

Deno.test("the install script is this clone's scripts/install-criu", async () => {
  assert.ok(INSTALL_SCRIPT.endsWith("/scripts/install-criu"));
  assert.ok((await Deno.stat(INSTALL_SCRIPT)).isFile);
});
