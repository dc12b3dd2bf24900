/** lib/base/mountinfo.ts: every field of a line, escapes undone, lines that do not parse left out. */
import assert from "node:assert/strict";
import { parseMountinfo } from "../../../lib/base/mountinfo.ts";

Deno.test("mountinfo: a line's fields, its optional fields skipped, escapes undone", () => {
  const text = [
    "47 27 254:0 /home/a\\040b /srv/my\\040space rw,nosuid,relatime shared:1 master:2 - ext4 /dev/vda rw,discard",
    "28 27 0:25 / /mnt/tools ro,nosuid,nodev,relatime - tmpfs tools ro,size=4k",
    "not a mountinfo line",
    "x 27 0:25 / /bad rw - tmpfs tmpfs rw",
    "29 27 0:26 / /no-type rw - ",
    "",
  ].join("\n");
  assert.deepEqual(parseMountinfo(text), [
    {
      id: 47,
      parent: 27,
      dev: "254:0",
      root: "/home/a b",
      mountpoint: "/srv/my space",
      options: ["rw", "nosuid", "relatime"],
      fstype: "ext4",
      source: "/dev/vda",
      superOptions: ["rw", "discard"],
    },
    {
      id: 28,
      parent: 27,
      dev: "0:25",
      root: "/",
      mountpoint: "/mnt/tools",
      options: ["ro", "nosuid", "nodev", "relatime"],
      fstype: "tmpfs",
      source: "tools",
      superOptions: ["ro", "size=4k"],
    },
  ]);
});
