import assert from "node:assert/strict";
import { readMap, resolveStatePaths } from "../../lib/state/tree.ts";
import { run, spec } from "../../commands/setpe.ts";
import { execute, invoke, sandbox as shared } from "../tools/sandbox.ts";
import * as showmap from "../../commands/showmap.ts";

const LAUNCHER = new URL("../../om", import.meta.url).pathname;

const HOWTO_MAP = `# openMosix-# IP number-of-nodes
1 192.168.10.220 1
2 192.168.10.78 1
3 192.168.10.84 1
`;

const sandbox = () => shared("setpe", { env: { OM_HOST_ADDRESSES: "192.168.10.78" } });

const setpe = (argv: string[], env: Record<string, string>, stdin?: string) =>
  invoke({ spec, run }, argv, env, stdin);

Deno.test("setpe -w installs the table silently, own node from this host's address", async () => {
  await using box = await sandbox();
  const map = await box.file("openmosix.map", HOWTO_MAP);
  assert.deepEqual(await setpe(["-w", "-f", map], box.env), { code: 0, out: "", err: "" });
  assert.deepEqual(await readMap(box.paths), {
    self: 2,
    map: {
      gateways: 0,
      entries: [
        { base: 1, address: "192.168.10.220", count: 1 },
        { base: 2, address: "192.168.10.78", count: 1 },
        { base: 3, address: "192.168.10.84", count: 1 },
      ],
    },
  });
});

Deno.test("setpe -w of the table in force changes nothing and says so; -W writes anyway", async () => {
  await using box = await sandbox();
  const map = await box.file("openmosix.map", HOWTO_MAP);
  assert.equal((await setpe(["-w", "-f", map], box.env)).code, 0);
  const before = await Deno.stat(box.paths.config);
  const again = await setpe(["-w", "-f", map], box.env);
  assert.deepEqual(again, {
    code: 0,
    out: "setpe: this table is already in force; nothing changed (-W installs it anyway)\n",
    err: "",
  });
  assert.equal((await Deno.stat(box.paths.config)).ino, before.ino);

  assert.deepEqual(await setpe(["-W", "-f", map], box.env), { code: 0, out: "", err: "" });
  assert.notEqual((await Deno.stat(box.paths.config)).ino, before.ino);

  // A different own id or gateway count is a different table: -w writes it.
  assert.deepEqual(await setpe(["-w", "-g", "2", "-f", map], box.env), {
    code: 0,
    out: "",
    err: "",
  });
  assert.equal((await readMap(box.paths))?.map.gateways, 2);
  assert.deepEqual(await setpe(["-w", "-p", "3", "-g2", "-f", map], box.env), {
    code: 0,
    out: "",
    err: "",
  });
  assert.equal((await readMap(box.paths))?.self, 3);
});

Deno.test("setpe -w -f - reads the table from standard input", async () => {
  await using box = await sandbox();
  assert.equal((await setpe(["-w", "-f", "-"], box.env, "1 192.168.10.70 16\n")).code, 0);
  const state = await readMap(box.paths);
  assert.equal(state?.self, 9);
  assert.deepEqual(state?.map.entries, [{ base: 1, address: "192.168.10.70", count: 16 }]);

  const bad = await setpe(["-w", "-f", "-"], box.env, "\n1 192.168.10.70\n");
  assert.deepEqual(bad, {
    code: 1,
    out: "",
    err: `setpe: -:2: expected 3 fields "first-id address count", found 2 in "1 192.168.10.70"\n`,
  });
});

Deno.test("a bad line leaves the map in force exactly as it was", async () => {
  await using box = await sandbox();
  const good = await box.file("good.map", HOWTO_MAP);
  const bad = await box.file("bad.map", "1 192.168.10.220 1\n2 192.168.10.78 1\n0 10.0.0.1 1\n");
  assert.equal((await setpe(["-w", "-f", good], box.env)).code, 0);
  const config = await Deno.readFile(box.paths.config);
  const mospe = await Deno.readFile(box.paths.mospe);

  for (const flag of ["-w", "-W"]) {
    assert.deepEqual(await setpe([flag, "-f", bad], box.env), {
      code: 1,
      out: "",
      err: `setpe: ${bad}:3: node id "0" is out of range (1-65535)\n`,
    });
    assert.deepEqual(await Deno.readFile(box.paths.config), config);
    assert.deepEqual(await Deno.readFile(box.paths.mospe), mospe);
  }
});

Deno.test("own address not in the table: the original message, nothing written", async () => {
  await using box = await sandbox();
  const map = await box.file("openmosix.map", HOWTO_MAP);
  const env = { ...box.env, OM_HOST_ADDRESSES: "127.0.0.1,10.9.9.9" };
  for (const mode of ["-w", "-c"]) {
    assert.deepEqual(await setpe([mode, "-f", map], env), {
      code: 1,
      out: "",
      err:
        "setpe: the supplied table is well-formatted, but my IP address (127.0.0.1) is not there!\n",
    });
  }
  assert.equal(await readMap(box.paths), undefined);

  // Any of the host's addresses will do, aliases included.
  const aliased = await box.file("alias.map", HOWTO_MAP + "3 10.9.9.9 ALIAS\n");
  assert.equal((await setpe(["-w", "-f", aliased], env)).code, 0);
  assert.equal((await readMap(box.paths))?.self, 3);
});

Deno.test("without the override, an address of this host's interfaces is found", async () => {
  await using box = await sandbox();
  const addresses = Deno.networkInterfaces().filter((i) => i.family === "IPv4");
  assert.ok(addresses.length > 0, "this host has no IPv4 interface");
  const env = { ...box.env };
  delete env.OM_HOST_ADDRESSES;
  const map = await box.file("m.map", `77 ${addresses[0].address} 1\n`);
  assert.deepEqual(await setpe(["-w", "-f", map], env), { code: 0, out: "", err: "" });
  assert.equal((await readMap(box.paths))?.self, 77);
});

Deno.test("setpe -p names the own node, which must be in the table", async () => {
  await using box = await sandbox();
  const map = await box.file("m.map", "1 192.168.1.1 4\n");
  const env = { ...box.env, OM_HOST_ADDRESSES: "10.0.0.1" };
  assert.equal((await setpe(["-w", "-p", "3", "-f", map], env)).code, 0);
  assert.equal((await readMap(box.paths))?.self, 3);
  assert.deepEqual(await setpe(["-w", "-p", "5", "-f", map], env), {
    code: 1,
    out: "",
    err: "om setpe: Cannot use node id 5 (-p): the table does not define it\n",
  });
  assert.equal((await setpe(["-w", "-p", "0", "-f", map], env)).code, 2);
  assert.equal((await readMap(box.paths))?.self, 3);
});

Deno.test("setpe -c checks only: exit 0 or 1, nothing written", async () => {
  await using box = await sandbox();
  const good = await box.file("good.map", HOWTO_MAP);
  const bad = await box.file("bad.map", "1 192.168.10.220 x\n");
  assert.deepEqual(await setpe(["-c", "-f", good], box.env), { code: 0, out: "", err: "" });
  assert.deepEqual(await setpe(["-w", "-c", "-f", good], box.env), { code: 0, out: "", err: "" });
  assert.deepEqual(await setpe(["-c", "-f", bad], box.env), {
    code: 1,
    out: "",
    err: `setpe: ${bad}:1: count "x" is not a number or ALIAS\n`,
  });
  assert.equal(await readMap(box.paths), undefined);
});

Deno.test("without -f the default map files are tried in order", async () => {
  await using box = await sandbox();
  const second = await box.file("mosix.map", HOWTO_MAP);
  const third = await box.file("hpc.map", "1 192.168.10.78 1\n");
  const env = { ...box.env, OM_MAP_FILES: `${box.dir}/openmosix.map:${second}:${third}` };
  assert.equal((await setpe(["-w"], env)).code, 0);
  assert.equal((await readMap(box.paths))?.map.entries.length, 3);

  const none = { ...box.env, OM_MAP_FILES: `${box.dir}/a.map:${box.dir}/b.map` };
  assert.deepEqual(await setpe(["-c"], none), {
    code: 1,
    out: "",
    err: `om setpe: Cannot find a map file: none of ${box.dir}/a.map, ${box.dir}/b.map exists ` +
      "(name one with -f FILE, or -f - for standard input)\n",
  });
  assert.deepEqual(await setpe(["-c", "-f", `${box.dir}/a.map`], box.env), {
    code: 1,
    out: "",
    err: `om setpe: Cannot read the map file "${box.dir}/a.map": no such file\n`,
  });
});

Deno.test("setpe -r prints the map in force in map-file form, which -w takes back", async () => {
  await using box = await sandbox();
  const noMap = await setpe(["-r"], box.env);
  assert.equal(noMap.code, 1);
  assert.match(noMap.err, /Cannot read the map ".*\/root\/admin\/config": no map in force/);

  const map = await box.file(
    "m.map",
    "# three\n1 192.168.10.220 1\n2\t192.168.10.78 2\n2 10.1.1.1 alias\n",
  );
  assert.equal((await setpe(["-w", "-f", map], box.env)).code, 0);
  const printed = await setpe(["-r"], box.env);
  const form = "1 192.168.10.220 1\n2 192.168.10.78 2\n2 10.1.1.1 ALIAS\n";
  assert.deepEqual(printed, { code: 0, out: form, err: "" });
  assert.deepEqual(await setpe(["-r", "-f", "-"], box.env), printed);

  const saved = `${box.dir}/saved.map`;
  assert.deepEqual(await setpe(["-r", "-f", saved], box.env), { code: 0, out: "", err: "" });
  assert.equal(await Deno.readTextFile(saved), form);
  assert.equal(
    (await setpe(["-w", "-f", "-"], box.env, printed.out)).out,
    "setpe: this table is already in force; nothing changed (-W installs it anyway)\n",
  );
});

Deno.test("setpe -off writes an empty map and node id 0", async () => {
  await using box = await sandbox();
  const map = await box.file("m.map", HOWTO_MAP);
  assert.equal((await setpe(["-w", "-g", "1", "-f", map], box.env)).code, 0);
  assert.deepEqual(await setpe(["-off"], box.env), { code: 0, out: "", err: "" });
  assert.deepEqual(await readMap(box.paths), { self: 0, map: { gateways: 0, entries: [] } });
  assert.deepEqual(await setpe(["-r"], box.env), { code: 0, out: "", err: "" });
  const shown = await invoke(showmap, [], box.env);
  assert.equal(shown.code, 0);
  assert.equal(
    shown.out,
    "My Node-Id: 0x0000\n\nBase Node-Id Address          Count\n------------ ---------------- -----\n",
  );
});

Deno.test("setpe --root overrides OM_ROOT", async () => {
  await using box = await sandbox();
  const map = await box.file("m.map", HOWTO_MAP);
  assert.equal((await setpe(["-w", "--root", `${box.dir}/other`, "-f", map], box.env)).code, 0);
  assert.equal(await readMap(box.paths), undefined);
  const other = resolveStatePaths({
    root: `${box.dir}/other`,
    proc: box.env.OM_PROC,
    alpha: false,
  });
  assert.equal((await readMap(other))?.self, 2);
});

Deno.test("usage mistakes exit 2", async () => {
  await using box = await sandbox();
  const map = await box.file("m.map", HOWTO_MAP);
  const cases: [string[], string][] = [
    [[], "Cannot tell what to do: give -w, -W, -c, -r or -off"],
    [["-w", "-r"], "Cannot use -w and -r together: give one of them"],
    [["-W", "-off"], "Cannot use -W and -off together: give one of them"],
    [["-c", "-off"], "Cannot use -c with -off: -c checks a table to install"],
    [["-w", "-g", "3", "-f", map], 'Cannot use "3" for -g: not between 0 and 2'],
    [["-r", "-p", "2"], "Cannot use -p with -r: it goes with -w, -W or -c"],
    [["-off", "-f", map], "Cannot use -f with -off: -off reads no table"],
    [["-w", "-n", "inet6", "-f", map], 'Cannot use "inet6" for -n: only inet exists'],
    [["-w", map], `Cannot use "${map}": setpe takes no arguments`],
    [["-x"], "Cannot use -x: unknown option"],
  ];
  for (const [argv, message] of cases) {
    assert.deepEqual(await setpe(argv, box.env), {
      code: 2,
      out: "",
      err: `om setpe: ${message}\nTry 'om setpe --help'.\n`,
    }, argv.join(" "));
  }
  assert.equal((await setpe(["-w", "-n", "inet", "-f", map], box.env)).code, 0);
});

Deno.test("end to end: the launcher's setpe -w, then its showmap", async () => {
  await using box = await sandbox();
  const map = await box.file("openmosix.map", HOWTO_MAP);
  const om = (...args: string[]) =>
    execute(LAUNCHER, args, { ...box.env, OM_HOST_ADDRESSES: "192.168.10.220", OM_ALPHA: "" });
  assert.deepEqual(await om("setpe", "-w", "-f", map), { code: 0, out: "", err: "" });
  assert.deepEqual(await om("showmap"), {
    code: 0,
    out: "My Node-Id: 0x0001\n\n" +
      "Base Node-Id Address          Count\n" +
      "------------ ---------------- -----\n" +
      "0x0001       192.168.10.220   1\n" +
      "0x0002       192.168.10.78    1\n" +
      "0x0003       192.168.10.84    1\n",
    err: "",
  });
  const bad = await box.file("bad.map", "1 192.168.10.220 1\n2 192.168.10.78 1 # ok\n3 x\n");
  assert.deepEqual(await om("setpe", "-w", "-f", bad), {
    code: 1,
    out: "",
    err: `setpe: ${bad}:3: expected 3 fields "first-id address count", found 2 in "3 x"\n`,
  });
  assert.equal(
    (await om("setpe", "-r")).out,
    "1 192.168.10.220 1\n2 192.168.10.78 1\n3 192.168.10.84 1\n",
  );
});
