/**
 * How a job starts (PROTOCOL.md §10): root-run wrappers (unshare, setsid, setpriv) with a fixed
 * environment, then a start gate, the job's PID 1, that takes the job's directory and environment
 * as its user and waits for the deputy's go before it execs the command.
 */

const encoder = new TextEncoder();

/** The whole environment of the root-run wrappers of a job (unshare, setsid, setpriv). */
export const WRAPPER_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
};

/**
 * The environment block the start gate reads from the job's stdin and evaluates as the job's
 * user: its length in bytes on a line, then one `export NAME='VALUE'` per variable (single quotes
 * escaped; a value may span lines). The gate reads the length with `read` and the rest with
 * `head -c` (one read, where `read` takes a byte at a time). Names a shell cannot export are
 * left out.
 */
export function envScript(env: Readonly<Record<string, string>>): string {
  let script = "";
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
    script += `export ${name}='${value.replaceAll("'", "'\\''")}'\n`;
  }
  return `${encoder.encode(script).length}\n${script}`;
}

/**
 * The start gate: the job's PID 1 is first a shell that waits for one line on stdin and then
 * execs the command (staying PID 1). The deputy finds the PID 1 and records the job before it
 * lets it go, so even a job that ends at once (`true`) is found, and no output is missed; a job
 * started elsewhere (job.run's `place`) is moved there while it waits. The line is the job's id,
 * which the job gets as $OM_JOB (its PID is known only once it runs). `read` takes bytes up to
 * the newline only (POSIX), so the job's stdin starts after it. Before that it enters the job's
 * directory (its first argument), and takes the job's environment from stdin ({@linkcode
 * envScript}): both as the job's user, so that a user cannot start a job where it may not go, and
 * so that the user's environment (LD_PRELOAD...) never reaches unshare, setsid and setpriv, which
 * run as root (they get WRAPPER_ENV; the daemon starts them in /).
 */
export const START_GATE = 'cd -- "$1" 2>/dev/null || ' +
  `{ echo "Cannot start in \\"$1\\": no such directory or permission denied" >&2; exit 125; }; ` +
  'shift; read -r om_n || exit 125; om_e=$(head -c "$om_n") || exit 125; eval "$om_e"; ' +
  'unset om_n om_e; read -r OM_JOB || exit 125; export OM_JOB; exec "$@"';
