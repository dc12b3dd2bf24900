/** lib/base/syslog.ts. */
import assert from "node:assert/strict";
import { formatSyslog, openSyslog } from "../../../lib/base/syslog.ts";

Deno.test("syslog: RFC 3164 lines, to a real socket or to the fallback file", async () => {
  const at = new Date(2026, 10, 1, 9, 5, 7);
  assert.equal(
    formatSyslog("info", "hi", "omdiscd", 12, at),
    "<30>Nov  1 09:05:07 omdiscd[12]: hi",
  );
  assert.equal(formatSyslog("error", "x", "omdiscd", 1, at).slice(0, 4), "<27>");
  const dir = await Deno.makeTempDir();
  try {
    const server = Deno.listenDatagram({ transport: "unixpacket", path: `${dir}/log` });
    const writer = openSyslog(`${dir}/log`, `${dir}/fallback.log`, "omdiscd");
    writer.write("warning", "careful");
    const [bytes] = await server.receive();
    assert.match(
      new TextDecoder().decode(bytes),
      /^<28>\w{3} [ \d]\d [\d:]{8} omdiscd\[\d+\]: careful$/,
    );
    writer.close();
    server.close();
    const file = openSyslog(`${dir}/missing`, `${dir}/fallback.log`, "omdiscd");
    file.write("warning", "to the file");
    file.close();
    assert.match(
      await Deno.readTextFile(`${dir}/fallback.log`),
      /omdiscd\[\d+\]: warning: to the file\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
