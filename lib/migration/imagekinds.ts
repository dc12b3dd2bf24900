/**
 * The images of a user's job (PROTOCOL.md §11): what imagecheck.ts refuses beyond files, by the
 * kind of thing criu would make or send as root while it restores: queued packets, unix socket
 * peers, netlink sockets, socket options, FIFOs and terminals, inotify watches, the inventory and
 * the tasks' mappings, alarm timers. {@linkcode kindsFault} is called by imagecheck.ts with what it decoded.
 */
import {
  dataEntries,
  FdType,
  FILE_ENTRY_FIELDS,
  imageEntries,
  inventoryEntry,
  MAGIC,
  type Mapping,
} from "../criu/images.ts";
import type { ProtoMessage } from "../criu/protobuf.ts";

/** The limits of this node a check of kinds needs (read by imagecheck.ts's hostFacts). */
export interface KindLimits {
  /** `vm.mmap_min_addr`: no mapping below it, nor below 64 KiB. */
  readonly mmapMinAddr: number;
  /** The largest send and receive buffers a user may ask (`net.core.wmem_max`, `rmem_max`). */
  readonly wmemMax: number;
  readonly rmemMax: number;
  /** `fs.pipe-max-size`. */
  readonly pipeMaxSize: number;
}

/** The limits of a Linux of om's day, where one cannot be read. */
export const DEFAULT_LIMITS: KindLimits = {
  mmapMinAddr: 65536,
  wmemMax: 212992,
  rmemMax: 212992,
  pipeMaxSize: 1048576,
};

/** Reads {@linkcode KindLimits} from /proc (`proc`), the defaults for what cannot be read. */
export async function readKindLimits(proc = "/proc"): Promise<KindLimits> {
  const number = (path: string, fallback: number) =>
    Deno.readTextFile(`${proc}/sys/${path}`).then(
      (text) => Number(text.trim().split(/\s+/)[0]) || fallback,
      () => fallback,
    );
  const [mmapMinAddr, wmemMax, rmemMax, pipeMaxSize] = await Promise.all([
    number("vm/mmap_min_addr", DEFAULT_LIMITS.mmapMinAddr),
    number("net/core/wmem_max", DEFAULT_LIMITS.wmemMax),
    number("net/core/rmem_max", DEFAULT_LIMITS.rmemMax),
    number("fs/pipe-max-size", DEFAULT_LIMITS.pipeMaxSize),
  ]);
  return { mmapMinAddr, wmemMax, rmemMax, pipeMaxSize };
}

/** What a check of kinds is given. */
export interface KindsInput {
  readonly names: readonly string[];
  /** The file holding the inventory (`inventory.img`, or the one held at a restore's gate). */
  readonly inventory?: string;
  /** files.img's entries, as decoded messages. */
  readonly files: readonly ProtoMessage[];
  /** The files.img ids some task's descriptor table holds. */
  readonly held: ReadonlySet<number>;
  readonly uid: number;
  readonly groups: ReadonlySet<number>;
  readonly who: string;
  readonly limits: KindLimits;
  readonly read: (name: string) => Promise<Uint8Array>;
}

/** Netlink families a user's socket may join groups of or send to (ROUTE, SOCK_DIAG, ...). */
const NETLINK_OPEN = new Set([0, 4, 15, 16]);
/** tty-info types: PTY (the only one a user's job may have). */
const TTY_PTY = 1;
const O_PATH = 0o10000000;
const CLOCK_REALTIME_ALARM = 8;
const CLOCK_BOOTTIME_ALARM = 9;
const MAP_LOCKED = 0x2000;
const MAP_HUGETLB = 0x40000;
/** criu 4.1.1's image version (CRTOOLS_IMAGES_V1_1). */
const IMAGE_VERSION = 2;
/**
 * task_kobj_ids_entry's namespaces a job shares with the host: net, ipc, uts, user, cgroup (its
 * PID and mount ones are its own; a time one criu makes at each restore).
 */
const SHARED_NAMESPACES = [[6, "net"], [7, "ipc"], [8, "uts"], [10, "user"], [
  11,
  "cgroup",
]] as const;
/** Network lock methods: iptables, nftables, skip. */
const LOCK_METHODS = new Set([0, 1, 2]);

/** The inner entry of a files.img entry of `type`, if it is one. */
function inner(file: ProtoMessage, type: number): ProtoMessage | undefined {
  if (file.uint32(1) !== type) return undefined;
  return file.message(FILE_ENTRY_FIELDS[type].field, `type ${type} entry`);
}

/** Why the socket options `opts` (sk-opts.proto) of socket `what` may not be restored. */
function optsFault(opts: ProtoMessage | undefined, what: string, limits: KindLimits) {
  if (!opts) return undefined;
  const mark = opts.uint32(10) ?? 0;
  if (mark !== 0) return `hold ${what} with SO_MARK ${mark}, which only a privileged task may set`;
  const priority = opts.uint32(8) ?? 0;
  if (priority > 6) {
    return `hold ${what} with SO_PRIORITY ${priority}, above 6, which only a privileged task may set`;
  }
  if (opts.bool(17)) {
    return `hold ${what} with SO_REUSEPORT, which criu would set as root (it could join a ` +
      "port group of root's)";
  }
  // The kernel doubles what a task asks, up to the maximum: twice the maximum is a user's most.
  const send = opts.uint32(1) ?? 0;
  const receive = opts.uint32(2) ?? 0;
  if (send > 2 * limits.wmemMax) {
    return `hold ${what} with a send buffer of ${send} bytes, above twice this node's ` +
      `net.core.wmem_max (${limits.wmemMax})`;
  }
  if (receive > 2 * limits.rmemMax) {
    return `hold ${what} with a receive buffer of ${receive} bytes, above twice this node's ` +
      `net.core.rmem_max (${limits.rmemMax})`;
  }
  return undefined;
}

/** Why the kinds in the images of a user's job may not be restored (the header); else undefined. */
export async function kindsFault(input: KindsInput): Promise<string | undefined> {
  const { names, files, held, limits, who } = input;
  const has = (name: string) => names.includes(name);

  // The inventory: criu 4.1.1's version, no plugin, no TCP close, a plain run id (criu puts it in
  // an nftables command line).
  if (input.inventory !== undefined) {
    const inventory = inventoryEntry(await input.read(input.inventory));
    const version = inventory.uint32(1);
    if (version !== IMAGE_VERSION) {
      return `say image version ${version}, not ${IMAGE_VERSION} (criu 4.1.1's)`;
    }
    const method = inventory.uint32(11) ?? 0;
    if (!LOCK_METHODS.has(method)) return `say network lock method ${method}, which criu lacks`;
    if (inventory.bool(10)) return "ask criu to close TCP connections (tcp_close)";
    const plugins = inventory.message(12, "plugins_entry");
    if (plugins && plugins.has(12)) return "name criu plugins, which om does not run";
    const runId = inventory.string(13);
    if (runId !== undefined && !/^[0-9a-f-]{1,64}$/.test(runId)) {
      return `give a dump run id ${JSON.stringify(runId)}, not a plain one`;
    }
    // criu gives a task a namespace of its own where its id differs from the dumping criu's
    // (root_ids): only the PID, mount and time ones may be a job's own.
    const root = inventory.message(3, "root_ids");
    for (const name of names.filter((name) => /^ids-\d+\.img$/.test(name))) {
      for (const ids of imageEntries(await input.read(name), name, MAGIC.ids)) {
        for (const [field, kind] of SHARED_NAMESPACES) {
          if (ids.uint32(field) !== root?.uint32(field)) {
            return `give a task (${name}) a ${kind} namespace other than the host's (root_ids)`;
          }
        }
      }
    }
  }

  // Sockets, FIFOs, terminals and watches in files.img.
  const unixByIno = new Map<number, { id: number; name?: Uint8Array }>();
  for (const file of files) {
    const unix = inner(file, FdType.unixSocket);
    if (unix) unixByIno.set(unix.uint32(2) ?? 0, { id: unix.uint32(1) ?? 0, name: unix.bytes(11) });
  }
  for (const file of files) {
    const id = file.uint32(2) ?? 0;
    const type = file.uint32(1);
    if (type === FdType.inotify) {
      return `hold an inotify descriptor, whose watches criu would place as root: om does not ` +
        `move a job of ${who} with one`;
    }
    const unix = inner(file, FdType.unixSocket);
    if (unix) {
      const what = `unix socket ${id}`;
      const uflags = unix.uint32(6) ?? 0;
      if (uflags !== 0) {
        return `hold ${what} with criu's flags 0x${uflags.toString(16)} (external, service or ` +
          "callback), which only criu's own options give";
      }
      const peerIno = unix.uint32(8) ?? 0;
      if (peerIno !== 0) {
        const peer = unixByIno.get(peerIno);
        if (!peer) {
          return `hold ${what} connected to socket ${peerIno}, which the images lack (criu ` +
            "would connect it as root to whatever has that name)";
        }
        if (!held.has(peer.id)) {
          return `hold ${what} connected to socket ${peerIno}, which no task of the job holds`;
        }
      }
      const fault = optsFault(unix.message(10, "opts"), what, limits);
      if (fault) return fault;
    }
    const inet = inner(file, FdType.inetSocket);
    if (inet) {
      const fault = optsFault(inet.message(14, "opts"), `inet socket ${id}`, limits);
      if (fault) return fault;
    }
    const netlink = inner(file, FdType.netlinkSocket);
    if (netlink) {
      const family = netlink.uint32(3) ?? 0;
      const what = `a netlink socket of family ${family}`;
      if (!NETLINK_OPEN.has(family)) {
        if (netlink.has(8)) {
          return `hold ${what} in multicast groups, which criu would join as root`;
        }
        if ((netlink.uint32(10) ?? 0) !== 0 || (netlink.uint32(9) ?? 0) !== 0) {
          return `hold ${what} connected to a group or a port, which criu would do as root`;
        }
      }
      const fault = optsFault(netlink.message(12, "opts"), what, limits);
      if (fault) return fault;
    }
    const fifo = inner(file, FdType.fifo);
    if (fifo) {
      if (fifo.uint32(3) === undefined) return `hold FIFO ${id} with no file`;
    }
    const clock = inner(file, FdType.timerfd)?.uint32(4);
    if (clock === CLOCK_REALTIME_ALARM || clock === CLOCK_BOOTTIME_ALARM) {
      return `hold a timerfd of an alarm clock (${clock}), which only a task with ` +
        "CAP_WAKE_ALARM may have";
    }
    const tty = inner(file, FdType.tty);
    if (tty && ((tty.uint32(3) ?? 0) & O_PATH)) return `hold a terminal ${id} opened with O_PATH`;
  }

  // Queued packets: criu sends them as root, file descriptors (SCM_RIGHTS) it opens as root.
  if (has("sk-queues.img")) {
    const bytes = await input.read("sk-queues.img");
    for (const packet of dataEntries(bytes, "sk-queues.img", MAGIC.skQueues, 2)) {
      if (packet.has(4)) {
        return "hold a queued packet carrying file descriptors (SCM_RIGHTS), which criu would " +
          `open as root: om does not move a job of ${who} with one`;
      }
      const target = packet.uint32(1) ?? 0;
      if (!held.has(target)) {
        return `hold a packet queued to socket ${target}, which no task of the job holds`;
      }
    }
  }

  // Terminals: a pseudo-terminal of the user's only.
  if (has("tty-info.img")) {
    const bytes = await input.read("tty-info.img");
    for (const tty of imageEntries(bytes, "tty-info.img", MAGIC.ttyInfo)) {
      const type = tty.uint32(2);
      if (type !== TTY_PTY) {
        return `hold a terminal of type ${type} (console, VT, serial...), not a pseudo-terminal`;
      }
      const uid = tty.uint32(14);
      const gid = tty.uint32(15);
      if (
        (uid !== undefined && uid !== input.uid) || (gid !== undefined && !input.groups.has(gid))
      ) {
        return `hold a pseudo-terminal owned by uid ${uid} and gid ${gid}, not ${who}`;
      }
    }
  }

  // Pipe and FIFO contents: no more than a pipe may hold here.
  for (
    const [name, magic] of [["pipes-data.img", MAGIC.pipesData], [
      "fifo-data.img",
      MAGIC.fifoData,
    ]] as const
  ) {
    if (!has(name)) continue;
    for (const pipe of dataEntries(await input.read(name), name, magic, 2)) {
      const size = pipe.uint32(3);
      if (size !== undefined && size > limits.pipeMaxSize) {
        return `hold a pipe of ${size} bytes (${name}), above this node's fs.pipe-max-size ` +
          `(${limits.pipeMaxSize})`;
      }
    }
  }
  return undefined;
}

/** The files.img ids of FIFOs (their regular files), which must be the user's own. */
export function fifoFiles(files: readonly ProtoMessage[]): Set<number> {
  const ids = new Set<number>();
  for (const file of files) {
    const regf = inner(file, FdType.fifo)?.uint32(3);
    if (regf !== undefined) ids.add(regf);
  }
  return ids;
}

/** Why mapping `map` may not be restored: too low an address, locked or huge pages. */
export function mappingKindFault(map: Mapping, limits: KindLimits): string | undefined {
  const at = `a mapping at 0x${map.start.toString(16)}`;
  const lowest = BigInt(Math.max(limits.mmapMinAddr, 65536));
  if (map.start < lowest) return `hold ${at}, below 0x${lowest.toString(16)}`;
  if (map.flags & MAP_LOCKED) return `hold ${at} locked in memory (MAP_LOCKED)`;
  if (map.flags & MAP_HUGETLB) return `hold ${at} of huge pages (MAP_HUGETLB)`;
  return undefined;
}
