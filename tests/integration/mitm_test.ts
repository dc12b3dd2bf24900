/**
 * A man in the middle of a whole migration between two keyed lab nodes (PROTOCOL.md §8.7, §11.1,
 * §9.1), with real CRIU: tests/tools/labmitm.ts runs in node 2's network namespace where node 1
 * reaches node 2 (its channel port, and the page port node 2 announces, lib/migration/faults.ts
 * `pagePortVia`), and forwards to node 2's daemon. A job on node 1 holding 8 MiB and printing a
 * counter is moved to node 2 again and again; each time the man in the middle flips a bit of,
 * replays, drops or injects one unit, in either direction, on the channel once the pages flow (the
 * move's mig.begin, mig.file... or their answers) or on the page stream in the middle of the pages.
 * Each time: the move fails, node 1 still runs the job, node 2 holds no copy of it and none of its
 * images. Then an untouched move through the same man in the middle succeeds (so the failures were
 * the tampering's), and the job's output is complete and in order, with its exit status.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { findNode, type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { startDaemon } from "../../lib/lab/daemons.ts";
import { waitForAgreement } from "../../lib/lab/maps.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { faultProgram, manualOnly, ROOT, runIn, startIn, withLab } from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const ignore = !ROOT || !criu;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Where node 2's daemon really listens; the man in the middle takes the usual ports. */
const CHANNEL = 20302;
const CHANNEL_BEHIND = 20303;
const PAGES_ANNOUNCED = 20411;
const PAGES_BEHIND = 20410;

/** perl: 8 MiB of its own, then `0`..`n-1` one every 100 ms, then exit 5. */
const holder = (marker: string, n: number) =>
  `my $m = '${marker}'; my $x = 'y' x (8 << 20); $| = 1; ` +
  `for my $i (0 .. ${n - 1}) { print "$i\\n"; select undef, undef, undef, 0.1 } exit 5`;

/** The man in the middle, in node `index`'s namespace, driven by lines on its stdin. */
function startMitm(lab: Lab, index: number, routes: Record<string, unknown>) {
  const [deno, ...rest] = omCommand([]);
  const main = rest.findIndex((arg) => arg.endsWith("/main.ts"));
  const tool = decodeURIComponent(new URL("../tools/labmitm.ts", import.meta.url).pathname);
  const child = execInNode(
    lab,
    index,
    [deno, ...rest.slice(0, main), tool, JSON.stringify(routes)],
    { stdin: "piped", stdout: "piped", stderr: "inherit" },
  );
  const said: string[] = [];
  const reading = (async () => {
    let text = "";
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      const parts = text.split("\n");
      text = parts.pop()!;
      said.push(...parts);
    }
  })();
  const input = child.stdin.getWriter();
  const saw = (what: RegExp, from = 0) =>
    retryUntil(() => said.slice(from).find((line) => what.test(line)), 20_000, {
      what: `the man in the middle to say ${what}`,
      intervalMs: 20,
    });
  return {
    said,
    saw,
    async send(message: unknown): Promise<void> {
      await input.write(encoder.encode(JSON.stringify(message) + "\n"));
    },
    /** Bytes the man in the middle carried towards the node on `link` so far. */
    async bytes(link: "channel" | "pages"): Promise<number> {
      const from = said.length;
      await this.send({ stats: true });
      const line = await saw(new RegExp(`^bytes ${link} `), from);
      return Number(line.split(" ")[2]);
    },
    async close(): Promise<void> {
      await input.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await reading;
    },
  };
}

/** The PIDs (host's view) of the processes whose command line holds `marker`. */
async function holders(marker: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const line = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    if (line.startsWith("perl\0") && line.includes(marker)) {
      found.push(Number(entry.name));
    }
  }
  return found;
}

/** The directories in node `index`'s migrations directory (images of moves in progress). */
async function migrationDirs(lab: Lab, index: number): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${nodeRoot(lab, index)}/migrations`)) {
      if (entry.isDirectory) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names;
}

const jobOf = async (lab: Lab, index: number, pid: number) =>
  (await readJobRecords(`${nodeRoot(lab, index)}/jobs`)).find((j) => j.pid === pid);

const lines = (text: string) => text.split("\n").filter((line) => line !== "");

/** One tampering: where, which way, what, and which unit. */
interface Attack {
  readonly link: "channel" | "pages";
  readonly direction: "in" | "out";
  readonly action: "flip" | "replay" | "drop" | "inject";
  readonly skip?: number;
  readonly afterPages?: boolean;
}

const ATTACKS: Attack[] = [
  // The channel, once the pages flow: the source's next frames (mig.begin, mig.file...).
  ...(["flip", "replay", "drop", "inject"] as const).map((action): Attack => ({
    link: "channel",
    direction: "in",
    action,
    afterPages: true,
  })),
  // The target's answers.
  { link: "channel", direction: "out", action: "flip", afterPages: true },
  { link: "channel", direction: "out", action: "replay", afterPages: true },
  // The page stream, in the middle of the pages.
  ...(["flip", "replay", "drop", "inject"] as const).map((action): Attack => ({
    link: "pages",
    direction: "in",
    action,
    skip: 3,
  })),
  // criu's answers back to the source.
  { link: "pages", direction: "out", action: "flip" },
];

Deno.test({
  name: "mitm: tampering with a migration between keyed nodes fails it safely, every time",
  ignore,
  fn: () =>
    withLab("mitm", planLab(2), async (lab) => {
      await manualOnly(lab);
      const one = findNode(lab, 1).nics[0].address;
      const two = findNode(lab, 2).nics[0].address;
      // Node 2 listens behind the man in the middle; it dials node 1 on its own channel port,
      // so node 1 gets a plain forwarder from that port to its own.
      await startDaemon(lab, 1, { env: { OM_CRIU: criu! } });
      await startDaemon(lab, 2, {
        env: { OM_CRIU: criu! },
        args: ["--channel-port", String(CHANNEL_BEHIND)],
        program: faultProgram({
          pagePortVia: { listen: PAGES_BEHIND, announce: PAGES_ANNOUNCED },
        }),
      });
      const mitm = startMitm(lab, 2, {
        channel: { listen: `${two}:${CHANNEL}`, forward: `${two}:${CHANNEL_BEHIND}` },
        pages: { listen: `${two}:${PAGES_ANNOUNCED}`, forward: `${two}:${PAGES_BEHIND}` },
      });
      const back = startMitm(lab, 1, {
        channel: { listen: `${one}:${CHANNEL_BEHIND}`, forward: `${one}:${CHANNEL}` },
      });
      try {
        await mitm.saw(/^ready$/);
        await back.saw(/^ready$/);
        const agreement = await waitForAgreement(lab, { timeoutMs: 20_000 });
        assert.ok(agreement.agreed, `maps do not agree: ${JSON.stringify(agreement.views)}`);

        const marker = `mitm${crypto.randomUUID().slice(0, 8)}`;
        const count = 400;
        const run = startIn(lab, 1, omCommand(["run", "--", "perl", "-e", holder(marker, count)]));
        const job = await retryUntil(
          async () =>
            (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).find((j) =>
              j.command.some((a) => a.includes(marker))
            ),
          10_000,
          { what: "the job on node 1", intervalMs: 20 },
        );
        await retryUntil(() => lines(run.sink.out).length >= 3, 10_000, { what: "its output" });

        for (const attack of ATTACKS) {
          const what = `${attack.action} on the ${attack.link} (${attack.direction})`;
          const from = mitm.said.length;
          await mitm.send(attack);
          await mitm.saw(/^armed$/, from);
          const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
          const tampered = mitm.said.slice(from).find((line) => line.startsWith("tampered "));
          assert.ok(tampered, `${what}: the man in the middle never acted (${moved.err})`);
          assert.notEqual(moved.code, 0, `${what}: the move succeeded: ${moved.out}`);
          assert.match(moved.err, /goes on at node 1/, what);
          assert.deepEqual(
            [(await jobOf(lab, 1, job.pid))?.node, await jobOf(lab, 2, job.pid)],
            [1, undefined],
            `${what}: node 1 runs the job, node 2 has none`,
          );
          // Nothing restored on node 2 and nothing of the job left there: one copy of the job
          // (node 1's), no images in node 2's migrations directory.
          await retryUntil(
            async () =>
              (await holders(marker)).length === 1 && !(await migrationDirs(lab, 2)).length,
            15_000,
            { what: `${what}: one copy of the job, node 2's images dropped` },
          ).catch(async (error) => {
            const pids = await holders(marker);
            const cmds = await Promise.all(
              pids.map((p) => Deno.readTextFile(`/proc/${p}/cmdline`).catch(() => "?")),
            );
            console.log(JSON.stringify({ cmds, dirs: await migrationDirs(lab, 2) }));
            console.log(await Deno.readTextFile(`${findNode(lab, 2).dir}/discover.log`));
            console.log(await Deno.readTextFile(`${findNode(lab, 1).dir}/discover.log`));
            throw error;
          });
          // The job goes on at node 1: it prints more.
          const at = lines(run.sink.out).length;
          await retryUntil(() => lines(run.sink.out).length >= at + 2, 10_000, {
            what: `${what}: more output at node 1`,
          }).catch(async (error) => {
            for (const pid of await holders(marker)) {
              console.log(await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "?"));
            }
            console.log(await Deno.readTextFile(`${findNode(lab, 1).dir}/discover.log`));
            console.log(await Deno.readTextFile(`${findNode(lab, 2).dir}/discover.log`));
            console.log(run.sink.err);
            throw error;
          });
          console.log(`${what}: refused (${moved.err.trim().split("\n").at(-1)})`);
        }
        const log = await Deno.readTextFile(`${findNode(lab, 2).dir}/discover.log`);
        assert.match(log, /seal|tamper|does not open/i, "node 2 said why it dropped a link");

        // The same path, untouched: the move succeeds and the man in the middle carried it.
        const before = await mitm.bytes("pages");
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        assert.ok((await mitm.bytes("pages")) > before + (8 << 20), "the pages went through it");
        assert.equal((await jobOf(lab, 1, job.pid))?.node, 2);
        const code = await run.finish();
        assert.deepEqual(
          lines(run.sink.out),
          Array.from({ length: count }, (_, i) => `${i}`),
          run.sink.err,
        );
        assert.equal(code, 5, run.sink.err);
      } finally {
        await mitm.close();
        await back.close();
      }
    }),
});
