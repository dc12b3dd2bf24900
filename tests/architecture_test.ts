/**
 * The architecture, kept by a test (ARCHITECTURE.md): the folders of lib/ are layers, and a file
 * imports only from its own folder or from a folder below it; lib/ never imports commands/; the
 * product reads no test-only environment variable; no source file grows past a size a reader can
 * hold without saying why in its header; and comments point only at files of this repository.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const REPO = resolve(decodeURIComponent(new URL("../", import.meta.url).pathname));

/**
 * The layers of lib/, lowest first. A folder may import from any folder before it in this list,
 * and none after it. node.ts (lib/'s root) composes a running node and sits on top.
 */
export const LAYERS = [
  "base",
  "cli",
  "state",
  "views",
  "channel",
  "info",
  "discovery",
  "criu",
  "jobs",
  "migration",
  "balance",
  "exec",
  "lab",
  "doctor",
  "stress",
  "web",
] as const;

/** The longest a source file may be without a "Longer than" reason in its header comment. */
const MAX_LINES = 600;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** The relative module specifiers a file imports (static, dynamic and re-exports). */
export function importsOf(text: string): string[] {
  const specs: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)"(\.{1,2}\/[^"]+)"/gm;
  for (const match of text.matchAll(pattern)) specs.push(match[1]);
  return specs;
}

/** The layer a lib/ path belongs to: its folder, "node" for lib/'s own files, null outside lib/. */
export function layerOf(path: string): string | null {
  const rel = relative(join(REPO, "lib"), path);
  if (rel.startsWith("..")) return null;
  const parts = rel.split("/");
  return parts.length === 1 ? "node" : parts[0];
}

function rank(layer: string): number {
  if (layer === "node") return LAYERS.length;
  return (LAYERS as readonly string[]).indexOf(layer);
}

/** Every import of lib/ and commands/ that breaks the layering, as "FILE imports TARGET". */
export async function violations(): Promise<string[]> {
  const files = [
    ...await sourceFiles(join(REPO, "lib")),
    ...await sourceFiles(join(REPO, "commands")),
  ];
  const found: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    for (const spec of importsOf(await Deno.readTextFile(file))) {
      const target = resolve(dirname(file), spec);
      const rel = `${relative(REPO, file)} imports ${relative(REPO, target)}`;
      if (from !== null && target.startsWith(join(REPO, "commands") + "/")) {
        found.push(`${rel} (lib/ never imports commands/)`);
        continue;
      }
      const to = layerOf(target);
      if (from === null || to === null || from === to) continue;
      if (rank(from) < 0) found.push(`${rel} (lib/${from}/ is not in LAYERS)`);
      else if (rank(to) < 0) found.push(`${rel} (lib/${to}/ is not in LAYERS)`);
      else if (rank(to) > rank(from)) found.push(`${rel} (${from} is below ${to})`);
    }
  }
  return found;
}

Deno.test("architecture: every folder of lib/ is a layer, and imports go downward only", async () => {
  const folders: string[] = [];
  for await (const entry of Deno.readDir(join(REPO, "lib"))) {
    if (entry.isDirectory) folders.push(entry.name);
  }
  assert.deepEqual(folders.sort(), [...LAYERS].sort());
  assert.deepEqual(await violations(), []);
});

Deno.test("architecture: the checker sees an upward import, and a cycle between two folders", () => {
  const base = join(REPO, "lib", "base", "x.ts");
  const views = join(REPO, "lib", "views", "y.ts");
  assert.equal(layerOf(base), "base");
  assert.equal(layerOf(join(REPO, "lib", "node.ts")), "node");
  assert.equal(layerOf(join(REPO, "commands", "run.ts")), null);
  assert.ok(rank(layerOf(views)!) > rank(layerOf(base)!));
  assert.deepEqual(
    importsOf(
      `import { a } from "../views/y.ts";\nexport { b } from "./z.ts";\nimport "./w.ts";\n` +
        `const m = await import("../jobs/deputy.ts");`,
    ),
    ["../views/y.ts", "./z.ts", "./w.ts", "../jobs/deputy.ts"],
  );
});

Deno.test("architecture: the product reads no test-only variable", async () => {
  const found: string[] = [];
  for (const dir of ["lib", "commands"]) {
    for (const file of await sourceFiles(join(REPO, dir))) {
      if ((await Deno.readTextFile(file)).includes("OM_TEST_")) found.push(relative(REPO, file));
    }
  }
  found.push(
    ...(await Deno.readTextFile(join(REPO, "main.ts"))).includes("OM_TEST_") ? ["main.ts"] : [],
  );
  assert.deepEqual(found, []);
});

/** deno.json's packages that only tests may import (README's dependency section says why). */
const TEST_ONLY_PACKAGES = ["puppeteer-core"];

Deno.test("architecture: the product imports no test-only package", async () => {
  const bare = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)"((?:npm:)?[^".][^"]*)"/gm;
  const found: string[] = [];
  const files = [
    join(REPO, "main.ts"),
    ...await sourceFiles(join(REPO, "lib")),
    ...await sourceFiles(join(REPO, "commands")),
  ];
  for (const file of files) {
    for (const match of (await Deno.readTextFile(file)).matchAll(bare)) {
      const name = match[1].replace(/^npm:/, "");
      if (
        TEST_ONLY_PACKAGES.some((p) =>
          name === p || name.startsWith(`${p}@`) || name.startsWith(`${p}/`)
        )
      ) {
        found.push(`${relative(REPO, file)} imports ${match[1]}`);
      }
    }
  }
  assert.deepEqual(found, []);
  // The pattern does see such an import (the check above cannot pass by seeing none).
  assert.deepEqual([...`import p from "npm:puppeteer-core@25";`.matchAll(bare)].map((m) => m[1]), [
    "npm:puppeteer-core@25",
  ]);
});

Deno.test(`architecture: no source file over ${MAX_LINES} lines without a reason in its header`, async () => {
  const found: string[] = [];
  for (const dir of ["lib", "commands"]) {
    for (const file of await sourceFiles(join(REPO, dir))) {
      const text = await Deno.readTextFile(file);
      const lines = text.split("\n").length;
      const header = text.slice(0, text.indexOf("*/") + 2);
      if (lines > MAX_LINES && !/Longer than \d+ lines:/.test(header)) {
        found.push(`${relative(REPO, file)} (${lines} lines)`);
      }
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("architecture: comments point only at files of this repository", async () => {
  const outside = [/\bnotes\/[a-z]+\.md/i, /\bSTYLE(?:\.md)?\b/, /\.\.\/shared\//, /\bseeds\//];
  const found: string[] = [];
  for (const dir of ["lib", "commands", "tests", "bench"]) {
    for (const file of await sourceFiles(join(REPO, dir))) {
      if (file === join(REPO, "tests", "architecture_test.ts")) continue;
      const text = await Deno.readTextFile(file);
      for (const pattern of outside) {
        const match = text.match(pattern);
        if (match) found.push(`${relative(REPO, file)}: ${match[0]}`);
      }
    }
  }
  assert.deepEqual(found, []);
});
