/** Test twins of the small lib files: ipv4, relay, pidfile, syslog, clock. */
import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";
import {
  formatIPv4,
  formatNodeId,
  isIPv4,
  maskOfPrefix,
  nodeIdOf,
  parseIPv4,
  sameNetwork,
} from "../../../lib/base/ipv4.ts";
import { acquirePidFile, type AlreadyRunningError } from "../../../lib/base/pidfile.ts";
import { RelayFilter } from "../../../lib/discovery/relay.ts";
import { formatSyslog, openSyslog } from "../../../lib/base/syslog.ts";

Deno.test("ipv4: node ids are the last two octets (the man page's examples)", () => {
  assert.equal(nodeIdOf("192.168.10.220"), 2780);
  assert.equal(formatNodeId(nodeIdOf("192.168.10.220")), "0x0adc");
  assert.equal(formatNodeId(nodeIdOf("10.0.0.99")), "0x0063");
  assert.equal(formatIPv4(parseIPv4("255.1.2.3")), "255.1.2.3");
  assert.equal(maskOfPrefix(24), "255.255.255.0");
  assert.equal(maskOfPrefix(0), "0.0.0.0");
  assert.equal(isIPv4("1.2.3"), false);
  assert.equal(isIPv4("1.2.3.256"), false);
  assert.throws(() => parseIPv4("a.b.c.d"), SyntaxError);
  assert.equal(sameNetwork("10.77.1.9", "10.77.1.1", "255.255.255.0"), true);
  assert.equal(sameNetwork("10.77.0.9", "10.77.1.1", "255.255.255.0"), false);
});

Deno.test("relay: the same bytes pass once per window", () => {
  const filter = new RelayFilter(1000);
  const a = new Uint8Array([1, 2, 3]);
  assert.equal(filter.admit(a, 0), true);
  assert.equal(filter.admit(a, 999), false);
  assert.equal(filter.admit(new Uint8Array([1, 2, 4]), 999), true);
  assert.equal(filter.admit(a, 1000), true);
});

Deno.test("pidfile: a second holder is refused with the first one's pid; release frees it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/omdiscd.pid`;
    const first = acquirePidFile(path, 4242);
    assert.equal(await Deno.readTextFile(path), "4242\n");
    assert.throws(() => acquirePidFile(path, 1), (e: AlreadyRunningError) => {
      assert.equal(e.pid, 4242);
      assert.match(e.message, /another om discover is running \(pid 4242\)/);
      return true;
    });
    first.release();
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    acquirePidFile(path, 7).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

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

Deno.test("clock: the fake clock fires repeating and one-shot timers in order", () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.every(100, () => fired.push(`every@${clock.now()}`));
  const cancel = clock.after(150, () => fired.push(`after@${clock.now()}`));
  clock.after(250, () => fired.push(`late@${clock.now()}`));
  cancel();
  clock.advance(300);
  assert.deepEqual(fired, ["every@100", "every@200", "late@250", "every@300"]);
  assert.equal(clock.now(), 300);
});

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
