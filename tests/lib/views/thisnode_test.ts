import assert from "node:assert/strict";
import { writeMap } from "../../../lib/state/tree.ts";
import { requireSelf, selfId } from "../../../lib/views/thisnode.ts";
import { sandbox } from "../../tools/sandbox.ts";

Deno.test("this node is the map's node id; no map, or id 0, says why", async () => {
  await using box = await sandbox("thisnode");
  const { paths } = box;
  await assert.rejects(selfId(paths), {
    message: `Cannot tell this node's id: no map in force in "${paths.config}" ` +
      `(is om discover running, or setpe -w done?)`,
  });
  const map = { gateways: 0, entries: [] };
  assert.throws(() => requireSelf(paths, { self: 0, map }), {
    message: "Cannot tell this node's id: openMosix is off here (node id 0, setpe -off)",
  });
  await writeMap(paths, 7, map);
  assert.equal(await selfId(paths), 7);
});
