import assert from "node:assert/strict";
import { InfoExchange, SAMPLES_PER_INTERVAL } from "../../../lib/info/exchange.ts";
import { decodeInfo } from "../../../lib/info/message.ts";
import type { Sample } from "../../../lib/info/measure.ts";
import type { NodeInfo } from "../../../lib/state/nodestate.ts";

const MiB = 2 ** 20;

function exchange(admin: { quiet: boolean; block: boolean; speed?: number }) {
  let at = 0;
  let cpuMs = 0;
  const written: NodeInfo[] = [];
  const state = { admin, runnable: 2 };
  const info = new InfoExchange({
    sample: (): Promise<Sample> => {
      at += 250;
      cpuMs += 250; // one CPU busy
      return Promise.resolve({
        at,
        cpus: 2,
        cpuMs,
        runnable: state.runnable,
        tmem: 1000 * MiB,
        rmem: 300 * MiB + 12345,
        mem: 600 * MiB + 678,
      });
    },
    admin: () => Promise.resolve(state.admin),
    write: (i) => {
      written.push(i);
      return Promise.resolve();
    },
    defaultSpeed: 10000,
  }, { id: 1, address: "10.77.0.1", interval: 1000 });
  return { info, written, state };
}

Deno.test("infoexchange: one message per interval with this node's figures", async () => {
  const { info, written } = exchange({ quiet: false, block: true, speed: 20000 });
  assert.equal(info.tickMs, 250);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 1 + 2 * SAMPLES_PER_INTERVAL; i++) {
    const bytes = await info.tick();
    if (bytes) sent.push(bytes);
  }
  assert.equal(sent.length, 2);
  assert.deepEqual(decodeInfo(sent[0]), {
    source: "10.77.0.1",
    block: true,
    cpus: 2,
    load: 100, // two runnable tasks on a CPU twice the reference speed
    speed: 20000,
    util: 50,
    mem: 600 * MiB,
    rmem: 300 * MiB,
    tmem: 1000 * MiB,
  });
  assert.deepEqual(written.at(-1), {
    id: 1,
    status: "up",
    speed: 20000,
    cpus: 2,
    load: 100,
    util: 50,
    mem: 600 * MiB,
    rmem: 300 * MiB,
    tmem: 1000 * MiB,
  });
});

Deno.test("infoexchange: quiet publishes nothing but keeps its own files current", async () => {
  const { info, written } = exchange({ quiet: true, block: false });
  for (let i = 0; i < 1 + SAMPLES_PER_INTERVAL; i++) assert.equal(await info.tick(), undefined);
  assert.equal(written.length, 1);
  assert.equal(written[0].speed, 10000, "the default speed");
});

Deno.test("infoexchange: members' figures, and down when stale or gone", async () => {
  const { info, written } = exchange({ quiet: false, block: false });
  const figures = {
    source: "10.77.0.2",
    block: false,
    cpus: 4,
    load: 250,
    speed: 10000,
    util: 60,
    mem: 1,
    rmem: 2,
    tmem: 3,
  };
  await info.receive(2, figures, 0);
  await info.receive(3, { ...figures, source: "10.77.0.3" }, 2500);
  assert.equal(info.heard(2)?.load, 250);
  assert.deepEqual(await info.expire(3000), [], "three intervals is not yet stale");
  assert.deepEqual(await info.expire(3001), [2]);
  assert.deepEqual(written.at(-1), {
    id: 2,
    status: "down",
    load: 0,
    speed: 0,
    cpus: 0,
    mem: 0,
    rmem: 0,
    tmem: 0,
    util: 0,
  });
  await info.forget(3);
  assert.equal(info.heard(3), undefined);
  await info.stop();
  assert.deepEqual(written.slice(-1).map((w) => [w.id, w.status]), [[1, "down"]]);
});
