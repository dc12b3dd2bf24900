/** lib/state/tree.ts. */
import assert from "node:assert/strict";

Deno.test("statetree: userland, kernel and ALPHA locations", async () => {
  const { resolveStatePaths } = await import("../../../lib/state/tree.ts");
  const userland = resolveStatePaths({ root: "/run/om", proc: "/nonexistent", alpha: false });
  assert.deepEqual(userland, {
    backend: "userland",
    root: "/run/om",
    admin: "/run/om/admin",
    nodes: "/run/om/nodes",
    config: "/run/om/admin/config",
    mospe: "/run/om/admin/mospe",
  });
  const alpha = resolveStatePaths({ root: "/run/om", proc: "/proc", alpha: true });
  assert.equal(alpha.config, "/tmp/om_config");
  assert.equal(alpha.mospe, "/tmp/om_mospe");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/hpc/admin`, { recursive: true });
    const kernel = resolveStatePaths({ root: "/run/om", proc: dir, alpha: false });
    assert.equal(kernel.backend, "kernel");
    assert.equal(kernel.config, `${dir}/hpc/admin/config`);
    assert.equal(kernel.mospe, `${dir}/hpc/admin/mospe`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
