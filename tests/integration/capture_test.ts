/**
 * What a host on the LAN sees of a keyed migration (PROTOCOL.md §9.1): tcpdump on the lab's bridge
 * captures every byte between the nodes while a job holding 8 MiB of a known pattern moves from
 * node 1 to node 2, with real CRIU. The pattern is nowhere in the capture, though its bytes crossed
 * the bridge (the capture holds more than the job's memory): the channel's frames and the page
 * link's records are sealed. The test fails if any 32 bytes of the pattern cross in clear.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { manualOnly, ROOT, runIn, startAll, startIn, withLab } from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const TCPDUMP = await new Deno.Command("tcpdump", { args: ["--version"], stdout: "null" })
  .output().then((o) => o.success, () => false);
// As root the test command installs tcpdump (scripts/test): without it the test fails, not skips.
const ignore = !ROOT || !criu;

/**
 * The job's secret: 32 bytes the job computes (so that they are in its memory, not in its command
 * line), the same that `patternBytes` computes here.
 */
const JOB = "my $p = join('', map { chr(65 + ($_ * 7 + 3) % 26) } 0 .. 31); " +
  'my $m = $p x (8 * 1024 * 1024 / 32); $| = 1; print "ready\\n"; ' +
  'for (1 .. 120) { sleep 1; print length($m) == 8388608 ? "ok\\n" : "bad\\n" }';

function patternBytes(): Uint8Array {
  const text = Array.from({ length: 32 }, (_, i) => String.fromCharCode(65 + (i * 7 + 3) % 26))
    .join("");
  return new TextEncoder().encode(text);
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  for (let i = haystack.indexOf(first); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return false;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}

/** tcpdump on the lab's bridge (in its switch namespace), every TCP byte, to `file`. */
function capture(lab: Lab, file: string): Deno.ChildProcess {
  return new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      lab.record.switchNamespace,
      "tcpdump",
      "-i",
      "br0",
      "-s",
      "0",
      // A kernel buffer of 128 MiB: the sealed pages cross faster than tcpdump writes them.
      "-B",
      "131072",
      "-w",
      file,
      "tcp",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

Deno.test({
  name: "capture: a keyed migration of a job's memory shows none of it on the bridge",
  ignore,
  fn: () =>
    withLab("capture", planLab(2), async (lab) => {
      assert.ok(TCPDUMP, "tcpdump is needed (scripts/test installs it)");
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: criu! });
      const file = `${lab.record.dir}/bridge.pcap`;
      const dump = capture(lab, file);
      let said = "";
      let saying: Promise<void> | undefined;
      try {
        // tcpdump says "listening on br0" once it captures.
        const reader = dump.stderr.getReader();
        while (!said.includes("listening on")) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`tcpdump ended: ${said}`);
          said += new TextDecoder().decode(value);
        }
        // The rest of what it says, its counts at the end among them.
        saying = (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            said += new TextDecoder().decode(value);
          }
        })();
        const run = startIn(lab, 1, omCommand(["run", "--", "perl", "-e", JOB]));
        await retryUntil(() => run.sink.out.includes("ready"), 20_000, { what: "the job ready" });
        const job = await retryUntil(
          async () => (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`))[0],
          10_000,
          { what: "the job's record" },
        );
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        // The moved job goes on at node 2, its output home through the sealed channel.
        const before = run.sink.out.split("\n").length;
        await retryUntil(() => run.sink.out.split("\n").length >= before + 2, 10_000, {
          what: "output from node 2",
        });
        assert.doesNotMatch(run.sink.out, /bad/);
        run.child.kill("SIGTERM");
        await run.finish().catch(() => {});
      } finally {
        dump.kill("SIGINT");
        await dump.status;
        await saying;
      }
      // Every packet is in the file, or the check below would prove less than it says.
      assert.match(said, /\b0 packets dropped by kernel/, said);
      const bytes = await Deno.readFile(file);
      // The pages crossed the bridge: the capture is bigger than the job's 8 MiB.
      assert.ok(bytes.length > 8 * 1024 * 1024, `${bytes.length} bytes captured`);
      const pattern = patternBytes();
      assert.ok(!contains(bytes, pattern), "the job's memory crossed the bridge in clear");
      // Nor does any 16-byte piece of it (a pattern cut by a packet boundary still leaves one).
      for (let at = 0; at + 16 <= pattern.length; at += 8) {
        assert.ok(!contains(bytes, pattern.subarray(at, at + 16)), `bytes ${at}-${at + 16}`);
      }
    }),
});
