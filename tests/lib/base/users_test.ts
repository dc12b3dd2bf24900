import assert from "node:assert/strict";
import { lookupUser, parsePasswdLine, userName } from "../../../lib/base/users.ts";

Deno.test("users: passwd lines parse; anything else is not one", () => {
  assert.deepEqual(
    parsePasswdLine("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    {
      name: "nobody",
      uid: 65534,
      gid: 65534,
      home: "/nonexistent",
    },
  );
  assert.equal(parsePasswdLine("nobody:x:65534"), undefined);
  assert.equal(parsePasswdLine("a:x:one:2:::/bin/sh"), undefined);
});

Deno.test("users: root is known by name; an unknown uid is named by its number", async () => {
  assert.equal((await lookupUser(0))?.name, "root");
  assert.equal(await userName(0), "root");
  assert.equal(await lookupUser(4_000_000_123), undefined);
  assert.equal(await userName(4_000_000_123), "uid 4000000123");
});
