/**
 * Memory that must come through moves intact: the job holds MIB mebibytes of a known pattern
 * (4 KiB blocks of 32-bit words, i*2654435761+r for round r), and round after round checks the
 * whole of it (its 32-bit word sum) before rewriting it for the next round, so that what is
 * checked has sat in memory, across whatever moves came meanwhile. Each line is a round's sum,
 * computed here from the pattern.
 */
import type { JobPlan, PlanParams, Workload } from "./workload.ts";

const WORDS_PER_BLOCK = 1024;
const BLOCKS_PER_MIB = 256;
const MULTIPLIER = 2654435761n;

/** The 32-bit sum of one block of round `round`'s pattern. */
function blockSum(round: number): bigint {
  let sum = 0n;
  for (let i = 0n; i < BigInt(WORDS_PER_BLOCK); i++) {
    sum += (i * MULTIPLIER + BigInt(round)) & 0xffffffffn;
  }
  return sum;
}

/** The 32-bit word sum of `mib` MiB holding round `round`'s pattern, as 8 hex digits. */
export function roundSum(mib: number, round: number): string {
  const total = (blockSum(round) * BigInt(mib * BLOCKS_PER_MIB)) & 0xffffffffn;
  return total.toString(16).padStart(8, "0");
}

/** The Perl program: `mib` MiB, `rounds` rounds. */
export function memoryProgram(mib: number, rounds: number): string {
  return [
    "use strict; use warnings; $| = 1;",
    `my $blocks = ${mib * BLOCKS_PER_MIB};`,
    'my $buf = "\\0" x ($blocks * 4096);',
    "sub fill { my ($r) = @_;",
    `  my $block = pack 'N*', map { ($_ * ${MULTIPLIER} + $r) & 0xffffffff } 0 .. ${
      WORDS_PER_BLOCK - 1
    };`,
    "  substr($buf, $_ * 4096, 4096, $block) for 0 .. $blocks - 1 }",
    "fill(0);",
    `for my $r (1 .. ${rounds}) {`,
    "  printf \"round %d: %08x\\n\", $r - 1, unpack('%32N*', $buf); fill($r) }",
    `printf "round %d: %08x\\n", ${rounds}, unpack('%32N*', $buf);`,
  ].join(" ");
}

/** What the program prints: one sum per round, the last one's after the loop. */
export function memoryOutput(mib: number, rounds: number): string {
  let text = "";
  for (let r = 0; r <= rounds; r++) text += `round ${r}: ${roundSum(mib, r)}\n`;
  return text;
}

/** The memory workload. */
export const memory: Workload = {
  name: "memory",
  summary: "holds MiB of a known pattern (--memory), checking and rewriting it round by round",
  needs: ["perl"],
  sizing: "work",
  smallest: 2,
  unit: "rounds",
  plan(size: number, params: PlanParams, tag: string): JobPlan {
    return {
      test: "memory",
      argv: ["perl", "-e", memoryProgram(params.memoryMiB, size), tag],
      expected: { kind: "text", text: memoryOutput(params.memoryMiB, size) },
      exitCode: 0,
      size,
      what: `memory: ${params.memoryMiB} MiB checked and rewritten ${size} times (perl)`,
    };
  },
};
