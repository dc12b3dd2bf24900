/**
 * The request bodies of the migration commands (PROTOCOL.md §11), as JSON, with the checks a
 * target or a home makes of them before it acts: each is read with {@linkcode bodyOf}, which
 * refuses a body of the wrong shape with a TypeError naming the command.
 */
import { bodyOf, isId } from "../channel/body.ts";
import { isJobPolicy, type JobExit, type JobPolicy, type OutputFd } from "../jobs/table.ts";
import { isPageToken } from "./pagelink.ts";
import { isReservation } from "./pagereceiver.ts";
import { isPageSecret } from "./pageseal.ts";
import { announcedFiles } from "./files.ts";
import { isJobOwner, type JobOwner } from "./jobowner.ts";

/** What the source tells the target in the final round's mig.pages, to start the restore early. */
export interface RestorePlan {
  /** The job's stdio pipe keys, as mig.begin will carry them. */
  readonly fds: readonly (string | null)[];
  /** The job has a mount namespace of its own (its images will hold one). */
  readonly mounts: boolean;
}

/** Whether `fds` are mig.begin's and mig.pages' stdio keys: three, each `pipe:[INODE]` or null. */
export function isStdioKeys(fds: unknown): boolean {
  return Array.isArray(fds) && fds.length === 3 &&
    fds.every((k) => k === null || (typeof k === "string" && /^pipe:\[\d+\]$/.test(k)));
}

function isRestorePlan(value: unknown): value is RestorePlan {
  const plan = value as RestorePlan;
  return typeof value === "object" && value !== null && isStdioKeys(plan.fds) &&
    typeof plan.mounts === "boolean";
}

/** A body that names only a job: mig.check, mig.restore, mig.commit, mig.status, mig.abort. */
export function jobBody(command: string, body: Uint8Array): { id: number } {
  return bodyOf<{ id: number }>(command, body, (r) => isId(r.id));
}

/**
 * job.migrate (local) and mig.request: move job `id` to a node, or home; mig.request may say who
 * asks on the node the job runs on (`by`: its balancer or expel; absent when it does not say).
 */
export function moveBody(
  command: string,
  body: Uint8Array,
  lowest: number,
): { id: number; to: number | "home"; by?: "balancer" | "expel" } {
  return bodyOf<{ id: number; to: number | "home"; by?: "balancer" | "expel" }>(
    command,
    body,
    (r) =>
      isId(r.id) && (r.to === "home" || (Number.isInteger(r.to) && r.to >= lowest)) &&
      (r.by === undefined || r.by === "balancer" || r.by === "expel"),
  );
}

/** mig.move: the home asks the node a guest runs on to send it to node `to`. */
export function guestMoveBody(body: Uint8Array): { id: number; to: number } {
  return bodyOf<{ id: number; to: number }>(
    "mig.move",
    body,
    (r) => isId(r.id) && Number.isInteger(r.to) && r.to > 0,
  );
}

/**
 * mig.pages: a page link for one dump round (§11.1): the token that admits it and the secret its
 * keys come from (lib/migration/pageseal.ts); the final round's restore plan; the job's user,
 * which the target checks before the job is frozen.
 */
export interface PagesRequest {
  readonly id: number;
  readonly home: number;
  readonly user: JobOwner;
  readonly token: string;
  /** The page link's secret: 64 lowercase hex characters (32 random bytes). */
  readonly secret: string;
  readonly dir?: string;
  readonly prev?: string;
  readonly restore?: RestorePlan;
  readonly reserve?: Record<string, number>;
}

/** Reads mig.pages. */
export function pagesBody(body: Uint8Array): PagesRequest {
  return bodyOf<PagesRequest>(
    "mig.pages",
    body,
    (r) =>
      isId(r.id) && Number.isInteger(r.home) && isJobOwner(r.user) && isPageToken(r.token) &&
      isPageSecret(r.secret) && r.secret !== r.token &&
      (r.dir === undefined || (typeof r.dir === "string" && /^pre-\d+$/.test(r.dir))) &&
      (r.prev === undefined ||
        (typeof r.prev === "string" && /^(\.\.\/)?pre-\d+$/.test(r.prev))) &&
      (r.restore === undefined || (r.dir === undefined && isRestorePlan(r.restore))) &&
      (r.reserve === undefined || (r.prev === undefined && isReservation(r.reserve))),
  );
}

/**
 * mig.begin: the job's record and user, its stdio keys, the stdin it had not read, and the image
 * files that `mig.file` will bring (bytes by name).
 */
export interface BeginRequest {
  readonly id: number;
  readonly home: number;
  readonly user: JobOwner;
  readonly files: Record<string, number>;
  readonly command: string[];
  readonly policy?: JobPolicy;
  readonly fds: (string | null)[];
  /** Base64. */
  readonly stdin?: string;
  readonly stdinEof?: boolean;
}

/** Reads mig.begin. */
export function beginBody(body: Uint8Array): BeginRequest {
  return bodyOf<BeginRequest>(
    "mig.begin",
    body,
    (r) =>
      isId(r.id) && Number.isInteger(r.home) && isJobOwner(r.user) && announcedFiles(r.files) &&
      Array.isArray(r.command) &&
      (r.stdin === undefined || typeof r.stdin === "string") &&
      (r.policy === undefined || isJobPolicy(r.policy)) &&
      (r.stdinEof === undefined || typeof r.stdinEof === "boolean") &&
      isStdioKeys(r.fds),
  );
}

/** job.push: a moved job's output, from the node it runs on. */
export function pushBody(
  body: Uint8Array,
): { id: number; fd: OutputFd; offset: number; data: string } {
  return bodyOf<{ id: number; fd: OutputFd; offset: number; data: string }>(
    "job.push",
    body,
    (r) =>
      isId(r.id) && (r.fd === 1 || r.fd === 2) && Number.isSafeInteger(r.offset) &&
      r.offset >= 0 && typeof r.data === "string",
  );
}

/** job.exited: a moved job's end, from the node it ran on. */
export function exitedBody(body: Uint8Array): { id: number; exit: JobExit } {
  return bodyOf<{ id: number; exit: JobExit }>(
    "job.exited",
    body,
    (r) =>
      isId(r.id) && typeof r.exit === "object" && r.exit !== null &&
      (Number.isInteger((r.exit as { code: number }).code) ||
        typeof (r.exit as { signal: string }).signal === "string"),
  );
}

/** job.input: bytes for a guest's stdin, or its end. */
export function inputBody(body: Uint8Array): { id: number; data?: string; eof?: boolean } {
  return bodyOf<{ id: number; data?: string; eof?: boolean }>(
    "job.input",
    body,
    (r) => isId(r.id) && (typeof r.data === "string" || r.eof === true),
  );
}

/** job.signal: a signal for a guest. */
export function signalBody(body: Uint8Array): { id: number; signal: Deno.Signal } {
  return bodyOf<{ id: number; signal: Deno.Signal }>(
    "job.signal",
    body,
    (r) => isId(r.id) && typeof r.signal === "string",
  );
}
