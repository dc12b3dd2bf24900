/**
 * Small file-system questions asked all over om, answered one way.
 */

/**
 * Whether something is at `path` (a file, a directory, a link: the link itself, not its target).
 * Only "not found" is an answer of false; any other failure (permission, I/O) is thrown, so a
 * question that could not be asked is never mistaken for an absence.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
