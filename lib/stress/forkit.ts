/**
 * omtest's forkit: a job that forks children, three per CPU of the cluster's nodes as omtest did,
 * each summing its own series and sending the sum to the parent through a pipe of its own, then
 * exiting with a status of its own. The parent collects every child's sum and exit status, in
 * order, and prints them; each child's sum is computed here in closed form.
 */
import type { JobPlan, PlanParams, Workload } from "./workload.ts";

/** The modulus of the children's sums. */
export const MODULUS = 1_000_003;
/** Children per CPU of the cluster, as omtest forked them. */
export const PER_CPU = 3;

/** The exit status child `c` ends with (1 to 200). */
export function childStatus(c: number): number {
  return (c % 200) + 1;
}

/** Child `c`'s sum: i*(c+1) over i < terms, modulo MODULUS. */
export function childSum(c: number, terms: number): number {
  const n = BigInt(terms);
  return Number(((n * (n - 1n) / 2n) * BigInt(c + 1)) % BigInt(MODULUS));
}

/** The Perl program: `children` children of `terms` terms each. */
export function forkitProgram(children: number, terms: number): string {
  return [
    "use strict; use warnings; $| = 1; my @kids;",
    `for my $c (0 .. ${children - 1}) {`,
    '  pipe(my $r, my $w) or die "pipe: $!";',
    '  my $pid = fork() // die "fork: $!";',
    "  if ($pid == 0) {",
    `    close $r; my $s = 0; for my $i (0 .. ${
      terms - 1
    }) { $s = ($s + $i * ($c + 1)) % ${MODULUS} }`,
    '    print {$w} "$s\\n"; close $w; exit($c % 200 + 1);',
    "  }",
    "  close $w; push @kids, [$c, $pid, $r];",
    "}",
    "for my $kid (@kids) {",
    "  my ($c, $pid, $r) = @$kid; my $s = <$r>; close $r;",
    '  $s = defined $s ? ($s =~ s/\\n\\z//r) : "nothing"; waitpid($pid, 0);',
    '  printf "child %d: sum %s, exit %d\\n", $c, $s, $? >> 8;',
    "}",
  ].join(" ");
}

/** What the parent prints. */
export function forkitOutput(children: number, terms: number): string {
  let text = "";
  for (let c = 0; c < children; c++) {
    text += `child ${c}: sum ${childSum(c, terms)}, exit ${childStatus(c)}\n`;
  }
  return text;
}

/** How many children a forkit job forks for a cluster of `cpus` CPUs. */
export function childrenFor(cpus: number): number {
  return PER_CPU * Math.max(1, cpus);
}

/** The forkit workload. */
export const forkit: Workload = {
  name: "forkit",
  summary: "omtest's forkit: three children per CPU of the cluster; every sum and exit status",
  needs: ["perl"],
  sizing: "work",
  smallest: 1000,
  unit: "terms per child",
  plan(size: number, params: PlanParams, tag: string): JobPlan {
    const children = childrenFor(params.cpus);
    return {
      test: "forkit",
      argv: ["perl", "-e", forkitProgram(children, size), tag],
      expected: { kind: "text", text: forkitOutput(children, size) },
      exitCode: 0,
      size,
      what: `forkit: ${children} children of ${size} terms each (perl)`,
    };
  },
};
