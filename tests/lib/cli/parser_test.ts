import assert from "node:assert/strict";
import {
  type CommandSpec,
  parse,
  renderHelp,
  unparse,
  UsageError,
} from "../../../lib/cli/parser.ts";

const spec: CommandSpec = {
  name: "demo",
  summary: "a demo",
  usage: ["om demo [-n] [-i IF] [-off]"],
  options: [
    { name: "interface", flags: ["-i", "--interface"], value: "IF", help: "interfaces" },
    { name: "nodaemon", flags: ["-n", "--nodaemon"], help: "foreground" },
    { name: "ttl", flags: ["-m", "--multicast-ttl"], value: "N", integer: [1, 255], help: "ttl" },
    { name: "off", flags: ["-off"], help: "turn off" },
    { name: "tag", flags: ["--tag"], value: "T", repeat: true, help: "tags" },
  ],
  examples: [{ command: "om demo -n", says: "runs" }],
};

Deno.test("cli: the spellings of the originals and of today", () => {
  const cases: [string[], Record<string, unknown>, string[]][] = [
    [["-i", "eth0"], { interface: "eth0" }, []],
    [["-ieth1,eth0"], { interface: "eth1,eth0" }, []],
    [["--interface=eth0", "-n"], { interface: "eth0", nodaemon: true }, []],
    [["-off"], { off: true }, []],
    [["-m", "4", "x", "--", "-n"], { ttl: 4 }, ["x", "-n"]],
    [["--tag", "a", "--tag", "b"], { tag: ["a", "b"] }, []],
    [["-"], {}, ["-"]],
  ];
  for (const [argv, options, args] of cases) {
    const parsed = parse(spec, argv);
    assert.deepEqual(parsed.options, options, argv.join(" "));
    assert.deepEqual(parsed.args, args, argv.join(" "));
  }
  assert.equal(parse(spec, ["-h"]).help, true);
  assert.equal(parse(spec, ["--help"]).help, true);
});

Deno.test("cli: mistakes are UsageErrors that say what is wrong", () => {
  const bad: [string[], RegExp][] = [
    [["-x"], /Cannot use -x: unknown option/],
    [["--nope=1"], /Cannot use --nope: unknown option/],
    [["-i"], /Cannot use -i: it needs IF/],
    [["-m", "0"], /Cannot use "0" for -m: not between 1 and 255/],
    [["-m", "four"], /Cannot use "four" for -m: not a whole number/],
    [["--nodaemon=yes"], /Cannot give a value to --nodaemon/],
  ];
  for (const [argv] of bad) assert.throws(() => parse(spec, argv), UsageError);
  for (const [argv, message] of bad) assert.throws(() => parse(spec, argv), message);
});

Deno.test("cli: unparse gives back an equivalent command line", () => {
  const parsed = parse(spec, ["-ieth0", "-n", "-m", "3", "--tag", "a", "--tag", "b"]);
  const again = parse(spec, unparse(spec, parsed));
  assert.deepEqual(again.options, parsed.options);
  assert.deepEqual(unparse(spec, parsed, ["nodaemon"]).includes("--nodaemon"), false);
});

Deno.test("cli: help lists usage, options, the help flags and the examples", () => {
  const help = renderHelp(spec);
  assert.match(help, /^om demo: a demo\n\nUsage:\n {2}om demo/);
  assert.match(help, /-i, --interface IF +interfaces/);
  assert.match(help, /-h, --help +show this help/);
  assert.match(help, /Examples:\n {2}\$ om demo -n\n {6}runs/);
});
