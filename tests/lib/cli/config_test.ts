import assert from "node:assert/strict";
import {
  DEFAULTS,
  FILE_KEYS,
  loadSettings,
  parseConfigFile,
  parseHttpAddress,
} from "../../../lib/cli/config.ts";

Deno.test("config: the file's keys, comments and blank lines", () => {
  const parsed = parseConfigFile(
    "# om\n\ninterface = eth1, eth0\nmulticast_ttl=4\nannounce_interval = 0.5 # fast\nalpha = yes\n",
    "/etc/om/om.conf",
  );
  assert.deepEqual(parsed, {
    interfaces: ["eth1", "eth0"],
    multicastTtl: 4,
    announceInterval: 500,
    alpha: true,
  });
});

Deno.test("config: a bad line is a SyntaxError naming FILE:LINE", () => {
  const bad: [string, RegExp][] = [
    ["port = 70000", /^f:2: port "70000" is not a number from 1 to 65535$/],
    ["colour = blue", /^f:2: unknown key "colour"$/],
    ["just words", /^f:2: expected "key = value"$/],
    ["announce_interval = 0", /^f:2: announce_interval "0" is not a number of seconds >= 0.01$/],
    ["group = 10.0.0.1", /^f:2: group "10.0.0.1" is not an IPv4 multicast address$/],
    ["debug = maybe", /^f:2: debug "maybe" is not yes or no$/],
  ];
  for (const [line, message] of bad) {
    assert.throws(() => parseConfigFile(`# ok\n${line}\n`, "f"), (e: Error) => {
      assert.ok(e instanceof SyntaxError);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("config: flags over environment over file over defaults", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/om.conf`;
    await Deno.writeTextFile(file, "port = 1111\ngroup = 239.1.1.1\nexpire_after = 60\n");
    const env: Record<string, string> = { OM_CONFIG: file, OM_PORT: "2222", OM_ROOT: "/x" };
    const fromFileAndEnv = await loadSettings({}, (n) => env[n]);
    assert.equal(fromFileAndEnv.port, 2222);
    assert.equal(fromFileAndEnv.group, "239.1.1.1");
    assert.equal(fromFileAndEnv.root, "/x");
    assert.equal(fromFileAndEnv.expireAfter, 60_000);
    assert.equal(fromFileAndEnv.announceInterval, DEFAULTS.announceInterval);
    const withFlags = await loadSettings({ port: 3333, root: undefined }, (n) => env[n]);
    assert.equal(withFlags.port, 3333);
    assert.equal(withFlags.root, "/x", "an undefined flag does not hide the environment");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: a missing default file is fine, a missing named one is an error", async () => {
  const settings = await loadSettings({}, () => undefined);
  assert.equal(settings.group, DEFAULTS.group);
  await assert.rejects(
    loadSettings({}, (n) => (n === "OM_CONFIG" ? "/nonexistent/om.conf" : undefined)),
    /Cannot read configuration "\/nonexistent\/om.conf": no such file/,
  );
  await assert.rejects(
    loadSettings({ announceInterval: 5000, expireAfter: 5000 }, () => undefined),
    /expire_after 5 s: it must be longer than announce_interval 5 s/,
  );
  await assert.rejects(loadSettings({ group: "10.1.2.3" }, () => undefined), /multicast/);
});

Deno.test("config: dist/om.conf.sample names every key with its default", async () => {
  const text = await Deno.readTextFile(new URL("../../../dist/om.conf.sample", import.meta.url));
  const keyLines = text.split("\n").filter((l) => /^# [a-z_]+ =( |$)/.test(l));
  const uncommented = keyLines.map((l) => l.slice(2)).filter((l) =>
    !l.startsWith("multicast_ttl") && !l.startsWith("key ")
  );
  const parsed = parseConfigFile(uncommented.join("\n"), "om.conf.sample");
  const named = keyLines.map((l) => l.slice(2).split(" =")[0]).sort();
  assert.deepEqual(named, [...FILE_KEYS].sort(), "every key is in the sample");
  for (const [setting, value] of Object.entries(parsed)) {
    assert.deepEqual(value, DEFAULTS[setting as keyof typeof DEFAULTS], `default of ${setting}`);
  }
});

Deno.test("config: root_guests is yes by default; no from the file, the environment or the flag", async () => {
  assert.equal(DEFAULTS.rootGuests, true, "root's jobs come by default, as before");
  assert.deepEqual(parseConfigFile("root_guests = no\n", "f"), { rootGuests: false });
  assert.throws(
    () => parseConfigFile("root_guests = maybe\n", "f"),
    /root_guests "maybe" is not yes or no/,
  );
  const fromEnv = await loadSettings({}, (n) => (n === "OM_ROOT_GUESTS" ? "no" : undefined));
  assert.equal(fromEnv.rootGuests, false);
  const fromFlag = await loadSettings({ rootGuests: false }, () => undefined);
  assert.equal(fromFlag.rootGuests, false);
});

Deno.test("config: exec_allow is a list of command patterns, each checked", async () => {
  assert.deepEqual(
    parseConfigFile("exec_allow = uptime, mosctl*, /usr/local/bin/*\n", "f"),
    { execAllow: ["uptime", "mosctl*", "/usr/local/bin/*"] },
  );
  assert.deepEqual(parseConfigFile("exec_allow =\n", "f"), { execAllow: [] });
  assert.throws(
    () => parseConfigFile("exec_allow = uptime, bin/x\n", "f"),
    /^SyntaxError: f:1: exec_allow "bin\/x": a pattern with a \/ must be an absolute path/,
  );
  const settings = await loadSettings({}, (n) => (n === "OM_EXEC_ALLOW" ? "*" : undefined));
  assert.deepEqual(settings.execAllow, ["*"]);
  assert.deepEqual(DEFAULTS.execAllow, [], "nothing runs by default");
  await assert.rejects(
    loadSettings({}, (n) => (n === "OM_EXEC_ALLOW" ? "./x" : undefined)),
    /^SyntaxError: OM_EXEC_ALLOW: exec_allow "\.\/x": a pattern with a \/ must be an absolute/,
  );
});

Deno.test("config: http is ADDR:PORT (IPv4, [IPv6] or localhost), off by default", async () => {
  assert.deepEqual(parseConfigFile("http = 10.0.0.5:8080\n", "f"), {
    http: { hostname: "10.0.0.5", port: 8080 },
  });
  assert.deepEqual(parseHttpAddress("[fe80::1]:80"), { hostname: "fe80::1", port: 80 });
  assert.deepEqual(parseHttpAddress("localhost:20380"), { hostname: "localhost", port: 20380 });
  assert.equal(parseConfigFile("http =\n", "f").http, undefined);
  assert.equal(DEFAULTS.http, undefined, "no page by default");
  for (
    const bad of [
      "10.0.0.5",
      ":80",
      "10.0.0.5:0",
      "10.0.0.5:65536",
      "300.1.1.1:80",
      "[::1]",
      "host.example:80",
      "10.0.0.5:80:1",
      "[zz]:80",
    ]
  ) {
    assert.throws(() => parseHttpAddress(bad), SyntaxError, bad);
  }
  assert.throws(
    () => parseConfigFile("http = 10.0.0.5\n", "f"),
    /^SyntaxError: f:1: http "10.0.0.5" is not ADDR:PORT/,
  );
  const settings = await loadSettings({}, (n) => (n === "OM_HTTP" ? "127.0.0.1:9000" : undefined));
  assert.deepEqual(settings.http, { hostname: "127.0.0.1", port: 9000 });
  const flagged = await loadSettings(
    { http: { hostname: "10.1.1.1", port: 1 } },
    (n) => (n === "OM_HTTP" ? "127.0.0.1:9000" : undefined),
  );
  assert.deepEqual(flagged.http, { hostname: "10.1.1.1", port: 1 }, "the flag wins");
});
