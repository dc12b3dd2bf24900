/** lib/state/nodestate.ts. */
import assert from "node:assert/strict";

Deno.test("nodestate: files per node; the writer replaces only what changed", async () => {
  const { downInfo, listNodeInfo, nodeInfoWriter, readNodeInfo, writeNodeInfo } = await import(
    "../../../lib/state/nodestate.ts"
  );
  const dir = await Deno.makeTempDir();
  try {
    const info = {
      id: 2780,
      status: "up" as const,
      load: 120,
      speed: 10000,
      cpus: 2,
      mem: 5,
      rmem: 6,
      tmem: 7,
      util: 33,
    };
    await writeNodeInfo(dir, info);
    assert.equal(await Deno.readTextFile(`${dir}/2780/load`), "120\n");
    assert.equal(await Deno.readTextFile(`${dir}/2780/status`), "up\n");
    assert.deepEqual(await readNodeInfo(dir, 2780), info);
    assert.equal(await readNodeInfo(dir, 1), undefined);
    const write = nodeInfoWriter(dir);
    await write(downInfo(5));
    const before = (await Deno.stat(`${dir}/5/cpus`)).mtime;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await write({ ...downInfo(5), status: "up", load: 9 });
    assert.equal((await Deno.stat(`${dir}/5/cpus`)).mtime?.getTime(), before?.getTime());
    assert.equal(await Deno.readTextFile(`${dir}/5/load`), "9\n");
    assert.deepEqual((await listNodeInfo(dir)).map((n) => n.id), [5, 2780]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
