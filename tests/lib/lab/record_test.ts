import assert from "node:assert/strict";
import {
  findNode,
  type Lab,
  LAB_FILE_VERSION,
  labFile,
  listLabs,
  loadLab,
  nodeRoot,
  saveLab,
} from "../../../lib/lab/record.ts";

/** A temporary directory of labs, removed when the scope holding it ends. */
async function labDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "om-lab-record-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A lab record of two nodes in `dir`, as createLab would make it (nothing made on the host). */
function twoNodes(dir: string, name: string): Lab {
  const node = (index: number) => ({
    index,
    namespace: `${name}-${index}`,
    nics: [{ name: "eth0", net: 0, address: `10.77.0.${index}`, prefix: 24, port: `n${index}e0` }],
    dir: `${dir}/${name}/node${index}`,
    root: `${dir}/${name}/node${index}/root`,
    config: `${dir}/${name}/node${index}/om.conf`,
    cgroups: {},
    discoverArgs: [],
  });
  return {
    record: {
      version: LAB_FILE_VERSION,
      name,
      dir: `${dir}/${name}`,
      created: "2025-01-01T00:00:00.000Z",
      switchNamespace: `${name}-sw`,
      networks: [{ net: 0, bridge: "br0" }],
      nodes: [node(1), node(2)],
      made: [{ kind: "dir", path: `${dir}/${name}` }],
    },
    children: new Map(),
  };
}

Deno.test("saveLab writes lab.json, the last save wins; loadLab and listLabs read it back", async () => {
  await using box = await labDir();
  const lab = twoNodes(box.path, "t1");
  await Deno.mkdir(lab.record.dir);
  const first = saveLab(lab);
  lab.record.made.push({ kind: "netns", name: "t1-sw", inode: 4026532000 });
  await saveLab(lab);
  await first;
  const text = await Deno.readTextFile(labFile(box.path, "t1"));
  assert.equal(text, JSON.stringify(lab.record, null, 2) + "\n");
  const loaded = await loadLab(`${box.path}/`, "t1");
  assert.deepEqual(loaded?.record, lab.record);
  assert.equal(loaded?.children.size, 0);

  await Deno.mkdir(`${box.path}/not-a-lab`);
  assert.deepEqual(await listLabs(box.path), ["t1"]);
  assert.deepEqual(await listLabs(`${box.path}/missing`), []);
  assert.equal(await loadLab(box.path, "t2"), undefined);
});

Deno.test("loadLab refuses a lab.json of another version", async () => {
  await using box = await labDir();
  const lab = twoNodes(box.path, "old");
  await Deno.mkdir(lab.record.dir);
  await Deno.writeTextFile(
    labFile(box.path, "old"),
    JSON.stringify({ ...lab.record, version: LAB_FILE_VERSION + 1 }),
  );
  await assert.rejects(loadLab(box.path, "old"), RangeError);
});

Deno.test("findNode finds a node by number, or names the nodes there are", () => {
  const lab = twoNodes("/tmp/labs", "t");
  assert.equal(findNode(lab, 2).namespace, "t-2");
  assert.equal(nodeRoot(lab, 1), "/tmp/labs/t/node1/root");
  assert.throws(() => findNode(lab, 3), /Cannot find node 3 in lab "t": it has nodes 1, 2/);
});
