/** om doctor's page-cipher and exec-cgroup checks: ok, and the warnings with their fixes. */
import assert from "node:assert/strict";
import { checkExecCgroup, checkPageCipher } from "../../../lib/doctor/speedups.ts";

Deno.test("doctor: page-cipher is ok with OpenSSL's, a warning without it or when it fails", () => {
  const path = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";
  assert.deepEqual(checkPageCipher(() => path, () => ({})), {
    name: "page-cipher",
    status: "ok",
    found: `OpenSSL's ChaCha20-Poly1305 from ${path} seals moved jobs' pages`,
  });
  const none = checkPageCipher(() => undefined, () => ({}));
  assert.equal(none.status, "warn");
  assert.match(
    none.found,
    /^no libcrypto\.so\.3 that only root may change in \/usr\/lib\/.*: node:crypto's/,
  );
  assert.equal(none.fix, "install OpenSSL 3 (apt-get install openssl)");
  const failing = checkPageCipher(() => path, () => undefined);
  assert.equal(failing.status, "warn");
  assert.match(failing.found, /does not load or fails its self-test \(a FIPS-mode OpenSSL/);
});

Deno.test("doctor: exec-cgroup says where commands' groups go, or warns without cgroup v2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/cgroup`, "0::/system.slice/om.service\n");
    await Deno.writeTextFile(
      `${dir}/mountinfo`,
      "41 31 0:38 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
    );
    assert.deepEqual(await checkExecCgroup(dir, "the daemon"), {
      name: "exec-cgroup",
      status: "ok",
      found: "om exec runs each command in a cgroup of its own below " +
        "/sys/fs/cgroup/system.slice/om.service",
    });
    // Only cgroup v1 mounted: no unified hierarchy for the daemon.
    await Deno.writeTextFile(
      `${dir}/mountinfo`,
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n",
    );
    const v1 = await checkExecCgroup(dir, "the daemon");
    assert.equal(v1.status, "warn");
    assert.match(v1.found, /^no cgroup v2 for the daemon: om exec kills a command's process group/);
    assert.match(v1.fix!, /mount -t cgroup2/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
