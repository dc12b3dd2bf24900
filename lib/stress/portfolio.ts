/**
 * The HOWTO's Perl stress program (14.2, Charles Nadeau's portfolio simulation), deterministic:
 * six portfolios of the same six stocks (the HOWTO's tickers, monthly mean return and standard
 * deviation), random proportions, then months of random growth. The random numbers come from the
 * program's own generator (Park and Miller's minimal standard, seeded with the date of Nadeau's
 * post), normal deviates from the sum of twelve uniforms (no log, no sin: only +, -, *, / and
 * sqrt, which IEEE 754 rounds the same in Perl and here), and the stock figures are integer
 * ratios (no decimal literal for two parsers to round apart). Each simulation prints its mean
 * monthly growth, its standard deviation and the final value as the bits of the doubles, so the
 * TypeScript twin below must agree to the last bit.
 */
import type { JobPlan, PlanParams, Workload } from "./workload.ts";

/** The generator's seed: 6 March 2002. */
export const SEED = 20020306;
/** Portfolios simulated, one line each. */
export const SIMULATIONS = 6;
/** Monthly mean return of each stock, in units of 1e-8 (BRKB, TEST, SPDR, twice). */
const MEAN = [1469184, -1519000, 892272, 1469184, -1519000, 892272];
/** Monthly standard deviation of each stock, in units of 1e-8. */
const SD = [7172493, 6377390, 4168840, 7172493, 6377390, 4168840];
const UNIT = 100000000;
const MODULUS = 2147483647;

/** The Perl program for `months` months per simulation. */
export function portfolioProgram(months: number): string {
  return [
    "use strict; use warnings; $| = 1;",
    `my $seed = ${SEED};`,
    `sub rnd { $seed = ($seed * 16807) % ${MODULUS}; return $seed / ${MODULUS} }`,
    "sub gauss { my $g = 0; $g += rnd() for 1 .. 12; return $g - 6 }",
    "sub bits { return unpack 'H16', pack 'd>', $_[0] }",
    `my @mean = (${MEAN.join(", ")});`,
    `my @sd = (${SD.join(", ")});`,
    `for my $sim (0 .. ${SIMULATIONS - 1}) {`,
    "  my $left = 1; my @ratio;",
    "  for my $j (0 .. 4) { $ratio[$j] = rnd() * $left; $left -= $ratio[$j] }",
    "  $ratio[5] = $left;",
    "  my ($value, $sum, $sumsq) = (1, 0, 0);",
    `  for my $m (1 .. ${months}) {`,
    "    my $growth = 0;",
    `    for my $k (0 .. 5) { $growth += $ratio[$k] * (gauss() * $sd[$k] / ${UNIT} + ` +
    `$mean[$k] / ${UNIT}) }`,
    "    $sum += $growth; $sumsq += $growth * $growth; $value *= 1 + $growth;",
    "  }",
    `  my $avg = $sum / ${months}; my $var = $sumsq / ${months} - $avg * $avg;`,
    '  print "simulation $sim: mean ", bits($avg), " sd ", bits(sqrt($var > 0 ? $var : 0)),',
    '    " value ", bits($value), "\\n";',
    "}",
  ].join(" ");
}

/** The 16 hex digits of a double, most significant byte first (Perl's pack 'd>'). */
export function doubleBits(value: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  let hex = "";
  for (let i = 0; i < 8; i++) hex += view.getUint8(i).toString(16).padStart(2, "0");
  return hex;
}

/** What the program prints for `months`: the same arithmetic, in the same order. */
export function portfolioOutput(months: number): string {
  let seed = SEED;
  const rnd = () => {
    seed = (seed * 16807) % MODULUS;
    return seed / MODULUS;
  };
  const gauss = () => {
    let g = 0;
    for (let i = 0; i < 12; i++) g += rnd();
    return g - 6;
  };
  let text = "";
  for (let sim = 0; sim < SIMULATIONS; sim++) {
    let left = 1;
    const ratio: number[] = [];
    for (let j = 0; j < 5; j++) {
      ratio[j] = rnd() * left;
      left -= ratio[j];
    }
    ratio[5] = left;
    let value = 1;
    let sum = 0;
    let sumsq = 0;
    for (let m = 1; m <= months; m++) {
      let growth = 0;
      for (let k = 0; k < 6; k++) growth += ratio[k] * (gauss() * SD[k] / UNIT + MEAN[k] / UNIT);
      sum += growth;
      sumsq += growth * growth;
      value *= 1 + growth;
    }
    const avg = sum / months;
    const variance = sumsq / months - avg * avg;
    text += `simulation ${sim}: mean ${doubleBits(avg)} sd ${
      doubleBits(Math.sqrt(variance > 0 ? variance : 0))
    } value ${doubleBits(value)}\n`;
  }
  return text;
}

/** The portfolio workload. */
export const portfolio: Workload = {
  name: "portfolio",
  summary: "the HOWTO's Perl portfolio simulation (14.2), with a fixed seed",
  needs: ["perl"],
  sizing: "work",
  smallest: 20,
  unit: "months",
  plan(size: number, _params: PlanParams, tag: string): JobPlan {
    return {
      test: "portfolio",
      argv: ["perl", "-e", portfolioProgram(size), tag],
      expected: { kind: "text", text: portfolioOutput(size) },
      exitCode: 0,
      size,
      what: `portfolio: ${SIMULATIONS} simulations of ${size} months (perl)`,
    };
  },
};
