import assert from "node:assert/strict";
import { UsageError } from "../../../lib/cli/parser.ts";
import {
  callerLockOf,
  parseNodeList,
  parseRunOptions,
  type RunParseOptions,
} from "../../../lib/jobs/runoptions.ts";

const opts = (argv: string[], options: RunParseOptions = {}) => parseRunOptions(argv, options);

Deno.test("runoptions: every option of mosrun, and where the command starts", () => {
  const cases: [string[], object][] = [
    [["true"], { policy: { lock: false, decay: "slow" } }],
    [["-h", "true"], { policy: { lock: true, decay: "slow" } }],
    [["-3", "true"], {
      policy: { lock: true, decay: "slow" },
      place: { nodes: [3], fallback: false },
    }],
    [["-3", "-F", "true"], {
      policy: { lock: true, decay: "slow" },
      place: { nodes: [3], fallback: true },
    }],
    [["-j2-4,7", "true"], {
      policy: { lock: true, decay: "slow" },
      place: { nodes: [2, 3, 4, 7], fallback: false },
    }],
    [["-j", "3,2", "true"], {
      policy: { lock: true, decay: "slow" },
      place: { nodes: [2, 3], fallback: false },
    }],
    [["-2", "-l", "true"], {
      policy: { lock: false, decay: "slow" },
      place: { nodes: [2], fallback: false },
    }],
    [["-L", "true"], { policy: { lock: true, decay: "slow" } }],
    [["-c", "true"], { policy: { lock: false, kind: "cpu", decay: "slow" } }],
    [["-i", "true"], { policy: { lock: false, kind: "io", decay: "slow" } }],
    [["-n", "true"], { policy: { lock: false, decay: "none" } }],
    [["-f", "true"], { policy: { lock: false, decay: "fast" } }],
    [["-f", "-s", "true"], { policy: { lock: false, decay: "slow" } }],
    [["-c", "-i", "-L", "-l", "true"], { policy: { lock: false, kind: "io", decay: "slow" } }],
    [["-3", "-h", "true"], { policy: { lock: true, decay: "slow" } }],
    [["-h", "-5", "true"], {
      policy: { lock: true, decay: "slow" },
      place: { nodes: [5], fallback: false },
    }],
  ];
  for (const [argv, expected] of cases) {
    const { help: _help, args, ...got } = opts(argv);
    assert.deepEqual(got, expected, argv.join(" "));
    assert.deepEqual(args, [argv.at(-1)], argv.join(" "));
  }
});

Deno.test("runoptions: options end at the first word or at --; --root stays", () => {
  assert.deepEqual(opts(["sh", "-c", "echo -1"]).args, ["sh", "-c", "echo -1"]);
  assert.deepEqual(opts(["-c", "sh", "-c", "x"]).policy.kind, "cpu");
  assert.deepEqual(opts(["--", "-c", "x"]).args, ["-c", "x"]);
  assert.equal(opts(["--", "-c", "x"]).policy.kind, undefined);
  assert.deepEqual(opts(["--root", "/tmp/r", "-2", "ls"]).root, "/tmp/r");
  assert.deepEqual(opts(["--root=/x", "ls"]).root, "/x");
  assert.equal(opts(["--root=/x", "ls"]).place, undefined);
  assert.deepEqual(opts(["-", "x"]).args, ["-", "x"]);
  assert.equal(opts(["--help"]).help, true);
  assert.equal(opts(["ls", "--help"]).help, false);
});

Deno.test("runoptions: the lock by default: om run against mosrun", () => {
  const lock = (argv: string[], mosrun: boolean) => opts([...argv, "true"], { mosrun }).policy.lock;
  // om run: unlocked unless a node is named.
  assert.equal(lock([], false), false);
  assert.equal(lock(["-c"], false), false);
  assert.equal(lock(["-n"], false), false);
  assert.equal(lock(["-h"], false), true);
  assert.equal(lock(["-2"], false), true);
  assert.equal(lock(["-j2-3"], false), true);
  assert.equal(lock(["-2", "-l"], false), false);
  // mosrun: locked when a node is named or no decay option was given, unless -l.
  assert.equal(lock([], true), true);
  assert.equal(lock(["-c"], true), true);
  assert.equal(lock(["-n"], true), false);
  assert.equal(lock(["-s"], true), false);
  assert.equal(lock(["-f"], true), false);
  assert.equal(lock(["-f", "-2"], true), true);
  assert.equal(lock(["-h", "-n"], true), true);
  assert.equal(lock(["-l"], true), false);
  assert.equal(lock(["-n", "-L"], true), true);
});

Deno.test("runoptions: -k keeps the caller's lock; outside a job it means locked", () => {
  const k = (callerLock?: boolean) => opts(["-k", "true"], { callerLock }).policy.lock;
  assert.equal(k(false), false);
  assert.equal(k(true), true);
  assert.equal(k(undefined), true);
  assert.equal(opts(["-k", "true"], { mosrun: true, callerLock: false }).policy.lock, false);
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(callerLockOf(env({})), undefined);
  assert.equal(callerLockOf(env({ OM_JOB_LOCK: "0" })), undefined, "OM_JOB says we are in a job");
  assert.equal(callerLockOf(env({ OM_JOB: "42", OM_JOB_LOCK: "0" })), false);
  assert.equal(callerLockOf(env({ OM_JOB: "42", OM_JOB_LOCK: "1" })), true);
  assert.equal(callerLockOf(env({ OM_JOB: "42", OM_JOB_LOCK: "x" })), undefined);
});

Deno.test("runoptions: bad input is a usage error that names it", () => {
  const bad: [string[], RegExp][] = [
    [[], /no command given/],
    [["-c"], /no command given/],
    [["-x", "true"], /Cannot use -x: unknown option/],
    [["-Fl", "true"], /Cannot use -Fl: unknown option/],
    [["--nope", "true"], /Cannot use --nope: unknown option/],
    [["-0", "true"], /Cannot use -0: not a node id/],
    [["-65536", "true"], /Cannot use -65536: not a node id/],
    [["-j", "a,b", "true"], /node list "a,b": "a" is not a node id/],
    [["-j2-", "true"], /node list "2-": "2-" is not/],
    [["-j4-2", "true"], /node list "4-2": "4-2" runs backwards/],
    [["-j0-2", "true"], /node list "0-2": "0-2" is out of range/],
    [["-j", "", "true"], /node list "": it is empty/],
    [["-j"], /-j: it needs a node list/],
    [["--root"], /--root: it needs DIR/],
  ];
  for (const [argv, message] of bad) {
    assert.throws(
      () => opts(argv),
      (e) => e instanceof UsageError && message.test(e.message),
      argv.join(" "),
    );
  }
  assert.deepEqual(parseNodeList("7,2-3,3"), [2, 3, 7]);
});

Deno.test("runoptions: a runner is its preset: only --root and --help after it", () => {
  const runon = opts(["--root", "/r", "--", "ls"], { preset: ["-3", "-L"] });
  assert.deepEqual(runon, {
    args: ["ls"],
    help: false,
    root: "/r",
    policy: { lock: true, decay: "slow" },
    place: { nodes: [3], fallback: false },
  });
  assert.deepEqual(opts(["ls", "-l"], { preset: ["-l", "-c"] }).policy, {
    lock: false,
    kind: "cpu",
    decay: "slow",
  });
  assert.throws(
    () => opts(["-l", "ls"], { preset: ["-L"] }),
    /Cannot use -l: this runner takes only --root/,
  );
  assert.equal(opts(["--help"], { preset: ["-L"] }).help, true);
});
