/**
 * A temporary directory that goes when its scope ends: `await using dir = await tempDir("x")`.
 * For lib/ unit tests (tests/tools/sandbox.ts adds a state tree and runs commands).
 */

/** A temporary directory, removed with everything in it when disposed. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/** Makes a temporary directory named `om-<prefix>-...`. */
export async function tempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: `om-${prefix}-` });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}
