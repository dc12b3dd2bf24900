/**
 * The migration's commands as channel handlers (PROTOCOL.md §11): a thin table that reads each
 * request's body (lib/migration/bodies.ts) and hands it to the role that answers it: the home
 * (`mig.request`, `job.push`, `job.exited`, and `job.migrate` on the local socket), the target
 * (`mig.check` to `mig.abort`) or the guests' host (`mig.move`, `job.input`, `job.signal`).
 */
import type { Handler } from "../channel/server.ts";
import { jsonBytes } from "../base/json.ts";
import {
  beginBody,
  exitedBody,
  guestMoveBody,
  inputBody,
  jobBody,
  moveBody,
  pagesBody,
  pushBody,
  signalBody,
} from "./bodies.ts";
import type { MoveState } from "./errors.ts";
import type { Guests } from "./guests.ts";
import type { Home } from "./home.ts";
import type { Target } from "./target.ts";
import { sessionUid } from "../jobs/localauth.ts";

/** The roles the handlers hand requests to. */
export interface Roles {
  readonly home: Home;
  readonly target: Target;
  readonly guests: Guests;
  /** Where a job is as this node sees it (mig.status). */
  readonly state: (id: number) => MoveState;
}

const done = jsonBytes({});

/** The TCP channel's commands of the migration. */
export function channelHandlers(roles: Roles): Map<string, Handler> {
  const { home, target, guests } = roles;
  return new Map<string, Handler>([
    // At home: the node a job runs on asks to move it (its balancer, or expel).
    ["mig.request", async (body, peer) => {
      const { id, to, by } = moveBody("mig.request", body, 1);
      return jsonBytes(await home.request(id, to, peer, by));
    }],
    ["mig.check", async () => jsonBytes(await target.check())],
    ["mig.move", async (body, peer) => {
      const { id, to } = guestMoveBody(body);
      return jsonBytes(await guests.move(id, to, peer));
    }],
    ["mig.begin", async (body, peer) => {
      const request = beginBody(body);
      const homeAddress = peer.nodeId === request.home ? peer.address : undefined;
      return jsonBytes(await target.begin(request, homeAddress));
    }],
    ["mig.pages", async (body) => jsonBytes(await target.pages(pagesBody(body)))],
    ["mig.file", async (body) => {
      await target.file(body);
      return done;
    }],
    [
      "mig.restore",
      async (body) => jsonBytes(await target.restore(jobBody("mig.restore", body).id)),
    ],
    ["mig.commit", async (body) => {
      await target.commit(jobBody("mig.commit", body).id);
      return done;
    }],
    [
      "mig.status",
      (body) => Promise.resolve(jsonBytes({ state: roles.state(jobBody("mig.status", body).id) })),
    ],
    ["mig.abort", async (body) => {
      await target.abort(jobBody("mig.abort", body).id);
      return done;
    }],
    // At home: a moved job's output and end, from the node that runs it.
    ["job.push", async (body, peer) => {
      await home.push(pushBody(body), peer);
      return done;
    }],
    ["job.exited", async (body, peer) => {
      const { id, exit } = exitedBody(body);
      await home.exited(id, exit, peer);
      return done;
    }],
    // On the node a job moved to: its stdin and signals, from its home.
    ["job.input", async (body) => {
      await guests.input(inputBody(body));
      return done;
    }],
    ["job.signal", async (body) => {
      const { id, signal } = signalBody(body);
      return jsonBytes({ sent: await guests.signal(id, signal) });
    }],
  ]);
}

/** The local socket's `job.migrate` (a user's `om migrate`, entered as such in the log of moves). */
export function localHandlers(home: Home): Map<string, Handler> {
  return new Map<string, Handler>([
    ["job.migrate", async (body, peer) => {
      const { id, to } = moveBody("job.migrate", body, 0);
      return jsonBytes(await home.migrate(id, to, { by: "user", uid: sessionUid(peer) }));
    }],
  ]);
}
