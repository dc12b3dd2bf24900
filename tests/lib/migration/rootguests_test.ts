/**
 * root_guests = no (lib/migration/target.ts `#admit`): a node refuses root's jobs from other nodes,
 * at mig.pages and at mig.begin (before the job is frozen, before anything is written), and says
 * why; other users' jobs come as before. The refusal is decided by the job's uid, whatever its
 * user is called.
 */
import assert from "node:assert/strict";
import { tempDir } from "../../tools/tempdir.ts";
import { begin, body, NOBODY, peer, ROOT, targetNode } from "./targetnode.ts";
import { newLink } from "../../tools/sealedpages.ts";

const REFUSED =
  /Cannot take job 77: node 2 takes no root jobs from other nodes \(root_guests = no\)/;

Deno.test("root_guests = no: root's job from node 1 is refused at mig.pages and mig.begin, nothing written", async () => {
  await using tmp = await tempDir("rootguests");
  const { handlers } = targetNode(tmp.path, { rootGuests: false });
  await assert.rejects(
    handlers.get("mig.pages")!(body({ id: 77, home: 1, user: ROOT, ...newLink() }), peer),
    REFUSED,
  );
  await assert.rejects(handlers.get("mig.begin")!(body(begin), peer), REFUSED);
  // uid 0 under another name is root all the same.
  await assert.rejects(
    handlers.get("mig.begin")!(body({ ...begin, user: { name: "toor", uid: 0, gid: 0 } }), peer),
    REFUSED,
  );
  const made = await Array.fromAsync(Deno.readDir(`${tmp.path}/migrations`)).catch(() => []);
  assert.deepEqual(
    made.map((e) => e.name).filter((n) => n.startsWith("77")),
    [],
    "nothing of job 77",
  );
});

Deno.test("root_guests = no: another user's job is taken; root_guests = yes (the default): root's too", async () => {
  await using tmp = await tempDir("rootguests");
  const closed = targetNode(`${tmp.path}/a`, { rootGuests: false });
  const reply = await closed.handlers.get("mig.begin")!(body({ ...begin, user: NOBODY }), peer);
  assert.ok(reply, "nobody's job is begun");
  const open = targetNode(`${tmp.path}/b`, {});
  assert.ok(await open.handlers.get("mig.begin")!(body(begin), peer), "root's job is begun");
  await closed.migration.close();
  await open.migration.close();
});
