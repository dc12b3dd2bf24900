/**
 * What the images of a user's job may hold (PROTOCOL.md §11, "The images of a user's job"). The
 * target runs `criu restore` as root, and criu does what the images say while it restores, before
 * the restored tasks' credentials (credentials.ts) and files (restoredfiles.ts) can be checked:
 * it creates deleted files (ghosts) with the owner and mode the images give, mknods devices,
 * opens files with the flags they give (O_TRUNC empties a file), unlinks a socket file to bind
 * its own there, mounts what they name in the job's mount namespace, and sets the scheduling,
 * limits and OOM score they give. So before criu reads the images of a job whose user is not root
 * (before the gate of a restore started early opens, lib/criu/restore.ts), the target decodes them
 * (lib/criu/images.ts, criu 4.1.1's layouts) and {@linkcode checkImages} refuses what a job of
 * that user could not have made itself:
 *
 * - an image criu 4.1.1 does not write for a job in om's shape (IMAGE_NAMES: no other namespace's
 *   images, no cgroups, none of the older per-kind file images), or one that does not decode;
 * - a descriptor of a kind only a privileged task has (packet socket, fanotify, tun, a plugin's
 *   external file, BPF map), a raw inet socket or one bound to a port below this node's
 *   `ip_unprivileged_port_start`, a unix socket bound to a path (criu would unlink what is there),
 *   a file owner (F_SETOWN) of another uid;
 * - a regular file opened, or a file mapped, with O_CREAT, O_EXCL or O_TRUNC (the kernel drops
 *   them once a file is open: no dump has them; O_TMPFILE it keeps, and criu drops it itself); a
 *   file that is not here, or whose mode does not give the user what its uses need (a descriptor
 *   its access mode, a working directory or an executable search/execute, a mapping its open
 *   flags), or inside a directory the user may not search; a SysV, socket or plugin mapping; a
 *   root directory other than `/`; a link remap (criu would link a file into any directory);
 * - a ghost file that is a device, a FIFO or a socket, that has the set-user-ID, set-group-ID or
 *   sticky bit, that is not owned by the user and one of its groups, or whose directory is not one
 *   the user may write and search here, reached with no symbolic link; a memfd with such a bit or
 *   such an owner (criu gives it them as root, and it can be executed);
 * - a file through a magic link of the job's /proc (`root`, `cwd`, `exe`, `fd/`...); a ghost link;
 *   a FIFO not the user's own to read and write; queued descriptors, unheld peers, netlink groups,
 *   socket options, inotify, terminals, the inventory, low, locked or huge mappings (imagekinds.ts);
 * - mounts other than the job's own (imagemounts.ts);
 * - a task with a real-time policy or priority, a nice value below 0 (or this daemon's), a hard
 *   resource limit above this daemon's own, an OOM score adjustment below 0 (or this daemon's), or
 *   a login uid other than none, the user's or this daemon's, a security label other than this
 *   daemon's, a socket label or AppArmor policy data (imagetasks.ts).
 *
 * A root job is not checked: root's may hold anything. The check looks at paths, as criu later
 * does: a directory its user may rename could be made a link to another between the two, which
 * can at most put a file of the user's own (no set-user-ID bit, its content) beside a path there
 * for the restore's time; what criu then hands the job is checked again on the restored copy
 * (restoredfiles.ts).
 */
import {
  descriptor,
  FdType,
  type FileEntry,
  fileEntry,
  FIRST_ENTRY_BYTES,
  firstEntry,
  type GhostFile,
  ghostFile,
  imageEntries,
  MAGIC,
  memfdInode,
  mountEntry,
  type RegFile,
  remapPath,
  RemapType,
  taskCore,
  taskDirs,
  taskMemory,
  VmaStatus,
} from "../criu/images.ts";
import type { CredentialRule } from "./credentials.ts";
import { descriptorNeed, directoriesAbove, type FileUser, grants, Need } from "./restoredfiles.ts";
import { type HostMount, mountsRefusal, parseMountinfo, plainPath } from "./imagemounts.ts";
import { checkTaskCore, parseLimits, parseNice, type TaskFacts } from "./imagetasks.ts";
import { HELD_INVENTORY } from "../criu/restore.ts";
import {
  DEFAULT_LIMITS,
  fifoFiles,
  type KindLimits,
  kindsFault,
  mappingKindFault,
  readKindLimits,
} from "./imagekinds.ts";

/**
 * The image files criu 4.1.1 writes for a job in om's shape (its own PID and mount namespaces,
 * the host's others), by name; a restore reads the inventory first, and om's own files in the
 * directory (logs, the held inventory, the page link's reservation) do not end in `.img`.
 */
export const IMAGE_NAMES = new RegExp(
  "^(?:inventory|pstree|files|remap-fpath|memfd|pipes-data|fifo-data|sk-queues|tty-info|" +
    "tty-data|filelocks|seccomp|" +
    "(?:core|ids|mm|fs|fdinfo|pagemap|pages|pagemap-shmem|mountpoints|timens|pidns)-\\d+|" +
    "(?:ghost-file|tcp-stream)-[0-9a-f]+)\\.img$",
);

/** open(2) flags that make a file or change it: never in a dump (the kernel drops them). */
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const O_NOFOLLOW = 0o400000;
const O_PATH = 0o10000000;
const MAKING_FLAGS: readonly [number, string][] = [
  [O_CREAT, "O_CREAT"],
  [O_EXCL, "O_EXCL"],
  [O_TRUNC, "O_TRUNC"],
];

/** The descriptor kinds only a privileged task has, by name. */
const PRIVILEGED_KINDS: Readonly<Record<number, string>> = {
  [FdType.packetSocket]: "a packet socket",
  [FdType.fanotify]: "a fanotify descriptor",
  [FdType.tun]: "a tun device",
  [FdType.external]: "an external file a plugin restores",
  [FdType.bpfMap]: "a BPF map",
};

const SOCK_RAW = 3;
const SOCK_PACKET = 10;

/** What this node gives a job started here: the daemon's own mounts, limits and the rest. */
export interface HostFacts extends TaskFacts, Partial<KindLimits> {
  readonly mounts: readonly HostMount[];
  /** The first port a user may bind (`net.ipv4.ip_unprivileged_port_start`). */
  readonly portStart: number;
}

/** Reads {@linkcode HostFacts} from this process's /proc (`proc`). */
export async function hostFacts(proc = "/proc"): Promise<HostFacts> {
  const read = (path: string) => Deno.readTextFile(`${proc}/${path}`);
  const [kindLimits, mountinfo, limits, stat, oom, loginuid, ports, label] = await Promise.all([
    readKindLimits(proc),
    read("self/mountinfo"),
    read("self/limits"),
    read("self/stat"),
    read("self/oom_score_adj"),
    read("self/loginuid").catch(() => "4294967295"),
    read("sys/net/ipv4/ip_unprivileged_port_start").catch(() => "1024"),
    read("self/attr/current").catch(() => undefined),
  ]);
  return {
    mounts: parseMountinfo(mountinfo),
    hardLimits: parseLimits(limits),
    nice: parseNice(stat),
    oomScoreAdj: Number(oom.trim()),
    loginuid: Number(loginuid.trim()),
    portStart: Number(ports.trim()) || 1024,
    lsmProfile: label?.replace(/\0/g, "").trim() || undefined,
    ...kindLimits,
  };
}

/** Options of {@linkcode checkImages}. */
export interface ImageCheckOptions {
  /** What this node gives a job (default: read from /proc, {@linkcode hostFacts}). */
  readonly host?: HostFacts;
  /** A path with its symbolic links resolved, or undefined (default: Deno.realPath). */
  readonly realPath?: (path: string) => Promise<string | undefined>;
}

/** The words of a need, for a message. */
function needWords(need: number): string {
  const words = [];
  if (need & Need.read) words.push("reading");
  if (need & Need.write) words.push("writing");
  if (need & Need.search) words.push("search");
  return words.length ? words.join(" and ") : "nothing";
}

/**
 * Why the images in `dir` of a job of `rule`'s user may not be restored here (the rule in this
 * file's header), as words after "its images" ("hold a ghost file ..."); undefined when they may,
 * and always for a root job. Images that cannot be read or decoded are refused, with the reason.
 */
export async function checkImages(
  dir: string,
  rule: CredentialRule,
  options: ImageCheckOptions = {},
): Promise<string | undefined> {
  if (rule.owner.uid === 0) return undefined;
  const words = (error: unknown) => error instanceof Error ? error.message : String(error);
  let host: HostFacts;
  try {
    host = options.host ?? await hostFacts();
  } catch (error) {
    return `cannot be checked: this node's own limits and mounts cannot be read: ${words(error)}`;
  }
  const realPath = options.realPath ??
    ((path: string) => Deno.realPath(path).catch(() => undefined));
  try {
    return await new ImageCheck(dir, rule, host, realPath).run();
  } catch (error) {
    return `cannot be read: ${words(error)}`;
  }
}

/** One check of one image set. */
class ImageCheck {
  readonly #user: FileUser;
  readonly #who: string;
  /** This node's limits on sockets, pipes and mappings (defaults where unread). */
  readonly #limits: KindLimits;
  /** Directories and whether the user may search them, as found. */
  readonly #searchable = new Map<string, boolean>();

  constructor(
    readonly dir: string,
    readonly rule: CredentialRule,
    readonly host: HostFacts,
    readonly realPath: (path: string) => Promise<string | undefined>,
  ) {
    const { owner } = rule;
    this.#user = { uid: owner.uid, gid: owner.gid, groups: new Set([owner.gid, ...rule.groups]) };
    this.#who = `user ${owner.name} (uid ${owner.uid})`;
    this.#limits = { ...DEFAULT_LIMITS, ...host };
  }

  async run(): Promise<string | undefined> {
    const names: string[] = [];
    let inventory: string | undefined;
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.name.endsWith(".img")) continue;
      if (!IMAGE_NAMES.test(entry.name)) {
        return `hold ${entry.name}, which criu 4.1.1 does not write for a job of a user`;
      }
      const info = await Deno.lstat(`${this.dir}/${entry.name}`);
      // A restore held at its gate has a FIFO at inventory.img (lib/criu/restore.ts).
      if (!info.isFile && !(entry.name === "inventory.img" && info.isFifo)) {
        return `hold ${entry.name}, which is not a regular file`;
      }
      names.push(entry.name);
      // Never opened when a FIFO (criu reads it): the source's inventory is held beside it.
      if (entry.name === "inventory.img") inventory = info.isFifo ? HELD_INVENTORY : entry.name;
    }
    if (inventory === HELD_INVENTORY) {
      const held = await Deno.lstat(`${this.dir}/${HELD_INVENTORY}`).catch(() => undefined);
      if (!held?.isFile) return `lack their inventory (${HELD_INVENTORY}) at the restore's gate`;
    }
    names.sort();
    const fileMessages = names.includes("files.img")
      ? imageEntries(await this.#read("files.img"), "files.img", MAGIC.files)
      : [];
    const files = fileMessages.map(fileEntry);
    const fifos = fifoFiles(fileMessages);
    const held = new Set<number>();
    const regs = new Map<number, RegFile>();
    for (const file of files) {
      const fault = this.#fileFault(file);
      if (fault) return fault;
      if (file.reg) {
        if (regs.has(file.reg.id)) return `hold file ${file.reg.id} twice`;
        regs.set(file.reg.id, file.reg);
      }
    }

    // Deleted files: criu makes a ghost of each (or links one back: refused).
    const remapped = new Set<number>();
    if (names.includes("remap-fpath.img")) {
      const bytes = await this.#read("remap-fpath.img");
      for (const remap of imageEntries(bytes, "remap-fpath.img", MAGIC.remapPath).map(remapPath)) {
        const reg = regs.get(remap.origId);
        if (!reg) return `hold a remap of file ${remap.origId}, which they do not hold`;
        if (remapped.has(reg.id)) return `hold two remaps of ${JSON.stringify(reg.name)}`;
        remapped.add(reg.id);
        if (remap.type === RemapType.ghost) {
          const name = `ghost-file-${remap.remapId.toString(16)}.img`;
          if (!names.includes(name)) return `name ${name} for ${reg.name}, which they lack`;
          const ghost = ghostFile(
            firstEntry(await this.#read(name, FIRST_ENTRY_BYTES), name, MAGIC.ghostFile),
          );
          const fault = await this.#ghostFault(reg.name, ghost);
          if (fault) return fault;
        } else if (remap.type === RemapType.procfs) {
          if (!/^\/proc\/\d+(\/|$)/.test(reg.name)) {
            return `hold a dead process's file ${JSON.stringify(reg.name)} outside /proc`;
          }
        } else if (remap.type === RemapType.linked) {
          return `link ${JSON.stringify(reg.name)} back from another file (a link remap), ` +
            "which criu would do as root in any directory";
        } else {
          return `hold a remap of ${JSON.stringify(reg.name)} of unknown type ${remap.type}`;
        }
      }
    }

    // A memfd's file criu makes as root, with the owner and mode the image gives.
    if (names.includes("memfd.img")) {
      const bytes = await this.#read("memfd.img");
      for (const memfd of imageEntries(bytes, "memfd.img", MAGIC.memfd).map(memfdInode)) {
        const fault = this.#ownerFault(`a memfd ${JSON.stringify(memfd.name)}`, memfd);
        if (fault) return fault;
      }
    }

    // What each regular file is used for, and so what its user must be given.
    const needs = new Map<number, number>();
    const use = (id: number | bigint, need: number, what: string): string | undefined => {
      const reg = typeof id === "number" && regs.get(id);
      if (!reg) return `name file ${id} as ${what}, which they do not hold`;
      needs.set(reg.id, (needs.get(reg.id) ?? 0) | need);
      return undefined;
    };
    for (const name of names) {
      let fault: string | undefined;
      if (/^fdinfo-\d+\.img$/.test(name)) {
        for (const fd of imageEntries(await this.#read(name), name, MAGIC.fdinfo).map(descriptor)) {
          held.add(fd.id);
          const reg = fd.type === FdType.reg ? regs.get(fd.id) : undefined;
          if (fd.type === FdType.reg) {
            fault ??= use(fd.id, descriptorNeed(reg?.flags ?? 0), `descriptor ${fd.fd}`);
          }
        }
      } else if (/^fs-\d+\.img$/.test(name)) {
        for (const dirs of imageEntries(await this.#read(name), name, MAGIC.fs).map(taskDirs)) {
          const root = regs.get(dirs.rootId)?.name;
          if (root !== undefined && root !== "/") {
            return `give a task the root directory ${JSON.stringify(root)}, not /`;
          }
          fault ??= use(dirs.cwdId, Need.search, "a working directory") ??
            use(dirs.rootId, Need.search, "a root directory");
        }
      } else if (/^mm-\d+\.img$/.test(name)) {
        for (const mm of imageEntries(await this.#read(name), name, MAGIC.mm).map(taskMemory)) {
          fault ??= use(mm.exeFileId, Need.search, "an executable");
          for (const map of mm.mappings) {
            fault ??= mappingKindFault(map, this.#limits) ?? this.#mappingFault(map, use);
          }
        }
      }
      if (fault) return fault;
    }
    // Looked at all at once (a stat or two each); the first fault in files.img's order is told.
    const regFaults = await Promise.all(
      [...regs.values()].map((reg) =>
        this.#regFault(reg, needs.get(reg.id), remapped.has(reg.id), fifos.has(reg.id))
      ),
    );
    const regFault = regFaults.find((fault) => fault !== undefined);
    if (regFault) return regFault;
    const kinds = await kindsFault({
      names,
      inventory,
      files: fileMessages,
      held,
      uid: this.#user.uid,
      groups: this.#user.groups,
      who: this.#who,
      limits: this.#limits,
      read: (name) => this.#read(name),
    });
    if (kinds) return kinds;

    const mountImages = names.filter((name) => /^mountpoints-\d+\.img$/.test(name));
    if (mountImages.length > 1) return `hold ${mountImages.length} mount namespaces, not 1`;
    for (const name of mountImages) {
      const entries = imageEntries(await this.#read(name), name, MAGIC.mounts).map(mountEntry);
      const sources = [...new Set(entries.flatMap((entry) => plainPath(entry.source) ?? []))];
      const resolved = await Promise.all(sources.map((source) => this.realPath(source)));
      const realPaths = new Map(sources.map((source, i) => [source, resolved[i]]));
      const fault = mountsRefusal(entries, {
        host: this.host.mounts,
        realPath: (path) => realPaths.get(path),
      });
      if (fault) return fault;
    }

    for (const name of names.filter((name) => /^core-\d+\.img$/.test(name))) {
      for (const core of imageEntries(await this.#read(name), name, MAGIC.core).map(taskCore)) {
        const fault = checkTaskCore(core, { facts: this.host, uid: this.rule.owner.uid });
        if (fault) return `hold a task (${name}) ${fault}`;
      }
    }
    return undefined;
  }

  /** The bytes of image `name` (its first `limit` bytes, when given). */
  async #read(name: string, limit?: number): Promise<Uint8Array> {
    const path = `${this.dir}/${name}`;
    if (limit === undefined) return await Deno.readFile(path);
    using file = await Deno.open(path);
    const buffer = new Uint8Array(limit);
    let filled = 0;
    while (filled < limit) {
      const read = await file.read(buffer.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    return buffer.subarray(0, filled);
  }

  /** Why a files.img entry may not be restored for the user, judged by its kind alone. */
  #fileFault(file: FileEntry): string | undefined {
    const privileged = PRIVILEGED_KINDS[file.type];
    if (privileged) return `hold ${privileged}, which a job of ${this.#who} cannot have`;
    const { fown } = file;
    if (fown && fown.pid !== 0 && (fown.uid !== this.#user.uid || fown.euid !== this.#user.uid)) {
      return `give file ${file.id} an owner for its signals as uid ${fown.uid} (euid ` +
        `${fown.euid}), not ${this.#user.uid}`;
    }
    if (file.reg) {
      const making = MAKING_FLAGS.filter(([bit]) => file.reg!.flags & bit).map(([, name]) => name);
      if (making.length) {
        return `open ${JSON.stringify(file.reg.name)} with ${making.join(" and ")}, which ` +
          "criu would do as root (no dump has them)";
      }
    }
    const name = file.unix?.name;
    if (name && name.length > 0 && name[0] !== 0) {
      const path = new TextDecoder().decode(name);
      return `hold a unix socket bound at ${JSON.stringify(path)}, which criu would unlink and ` +
        "bind again as root: om does not move a user's job with a socket bound to a path";
    }
    const inet = file.inet;
    if (inet) {
      if (inet.type === SOCK_RAW || inet.type === SOCK_PACKET) {
        return `hold a raw inet socket, which a job of ${this.#who} cannot have`;
      }
      if (inet.srcPort !== 0 && inet.srcPort < this.host.portStart) {
        return `hold an inet socket bound to port ${inet.srcPort}, below ` +
          `${this.host.portStart}, which only a privileged task may bind`;
      }
    }
    return undefined;
  }

  /** Why a mapping may not be restored; `use` notes what its file needs. */
  #mappingFault(
    map: { shmid: bigint; status: number; fdflags?: number; start: bigint },
    use: (id: number | bigint, need: number, what: string) => string | undefined,
  ): string | undefined {
    const at = `a mapping at 0x${map.start.toString(16)}`;
    if (map.status & (VmaStatus.sysvipc | VmaStatus.socket | VmaStatus.extPlugin)) {
      return `hold ${at} of a SysV segment, a socket or a plugin's, which criu would attach as root`;
    }
    if (!(map.status & (VmaStatus.filePrivate | VmaStatus.fileShared))) return undefined;
    if (map.status & VmaStatus.memfd) return undefined;
    if (map.fdflags === undefined) return `hold ${at} of a file with no open flags`;
    const making = MAKING_FLAGS.filter(([bit]) => map.fdflags! & bit).map(([, name]) => name);
    if (making.length) {
      return `map a file at 0x${map.start.toString(16)} opened with ${making.join(" and ")}, ` +
        "which criu would do as root (no dump has them)";
    }
    const shmid = map.shmid <= 0xffffffffn ? Number(map.shmid) : map.shmid;
    return use(shmid, descriptorNeed(map.fdflags), at);
  }

  /**
   * Why regular file `reg` may not be opened for the user here with `need` (its uses': by its own
   * flags when it has none); a remapped (deleted) one is judged by its ghost instead.
   */
  async #regFault(
    reg: RegFile,
    need: number | undefined,
    remapped: boolean,
    fifo: boolean,
  ): Promise<string | undefined> {
    const path = plainPath(reg.name);
    if (path !== reg.name) return `name a file ${JSON.stringify(reg.name)}, not a plain path`;
    if (remapped) return undefined;
    // The job's own /proc: its processes' files are not this host's (the rest of /proc is); but
    // criu, as root, would follow a magic link there to any file.
    const proc = /^\/proc\/(\d+|self|thread-self)(\/task\/\d+)?(\/|$)/.exec(path);
    if (proc) {
      const rest = path.slice(proc[0].length);
      if (/^(root|cwd|exe)(\/|$)|^(fd|map_files|ns)\//.test(rest)) {
        return `name ${JSON.stringify(path)}, through a magic link of /proc, which criu would ` +
          "follow as root";
      }
      return undefined;
    }
    const wanted = need ?? descriptorNeed(reg.flags);
    let info: Deno.FileInfo;
    try {
      info = reg.flags & O_NOFOLLOW ? await Deno.lstat(path) : await Deno.stat(path);
    } catch (error) {
      return error instanceof Deno.errors.NotFound
        ? `name ${JSON.stringify(path)}, which this node does not have`
        : `name ${JSON.stringify(path)}, which cannot be looked at here`;
    }
    if (fifo || info.isFifo) {
      // criu opens a FIFO for reading and writing whatever its flags, and writes its data into it.
      if (!info.isFifo || reg.flags & O_PATH) {
        return `open ${JSON.stringify(path)} as a FIFO, which is not one here or is opened ` +
          "with O_PATH";
      }
      if (
        info.uid !== this.#user.uid || !grants(fileMode(info), this.#user, Need.read | Need.write)
      ) {
        return `open the FIFO ${JSON.stringify(path)}, which is not one of ${this.#who}'s own ` +
          "that it may read and write";
      }
    }
    // A directory is entered, not read, by a descriptor that reads it: search is what it needs.
    const dirNeed = info.isDirectory && (wanted & Need.write) === 0 ? Need.search : wanted;
    if (!grants(fileMode(info), this.#user, dirNeed)) {
      return `open ${JSON.stringify(path)} for ${needWords(dirNeed)}, which ${this.#who} may ` +
        "not here";
    }
    for (const dir of directoriesAbove(path)) {
      if (!await this.#search(dir)) {
        return `name ${
          JSON.stringify(path)
        }, inside ${dir}, which ${this.#who} may not search here`;
      }
    }
    return undefined;
  }

  /**
   * Why a file criu makes as root (`what`: a ghost, a memfd) may not have `file`'s owner and mode:
   * the set-user-ID, set-group-ID or sticky bit, or an owner other than the user and one of its
   * groups.
   */
  #ownerFault(
    what: string,
    file: { uid: number; gid: number; mode?: number },
  ): string | undefined {
    const mode = file.mode ?? 0;
    if (mode & 0o7000) {
      return `hold ${what} with the set-user-ID, set-group-ID or sticky bit (mode ` +
        `0${mode.toString(8)}), which criu would make as root`;
    }
    if (file.uid !== this.#user.uid || !this.#user.groups.has(file.gid)) {
      return `hold ${what} owned by uid ${file.uid} and gid ${file.gid}, not ${this.#who} and ` +
        "one of its groups";
    }
    return undefined;
  }

  /** Whether the user may search directory `dir` (a missing one it may not). */
  async #search(dir: string): Promise<boolean> {
    let ok = this.#searchable.get(dir);
    if (ok === undefined) {
      const info = await Deno.stat(dir).catch(() => undefined);
      ok = info !== undefined && info.isDirectory &&
        grants(fileMode(info), this.#user, Need.search);
      this.#searchable.set(dir, ok);
    }
    return ok;
  }

  /**
   * Why criu may not make `ghost` for the deleted file `path` here: it makes it as root beside the
   * path (`PATH.cr.ID.ghost`, a directory at the path itself), with the ghost's owner and mode,
   * then links it at the path while it opens it.
   */
  async #ghostFault(path: string, ghost: GhostFile): Promise<string | undefined> {
    const name = JSON.stringify(path);
    if (plainPath(path) !== path || path === "/") {
      return `hold a ghost file ${name}, not a plain path`;
    }
    const kind = ghost.mode & 0o170000;
    const kinds: Record<number, string> = {
      0o020000: "character device",
      0o060000: "block device",
      0o010000: "FIFO",
      0o140000: "socket",
    };
    if (kinds[kind]) {
      const rdev = ghost.rdev === undefined
        ? ""
        : ` (rdev ${ghost.rdev >>> 20}:${ghost.rdev & 0xfffff})`;
      return `hold a ghost ${kinds[kind]} ${name}${rdev}, which criu would make as root`;
    }
    if (kind === 0o120000) {
      return `hold a ghost symbolic link ${name}, which criu would make as root and open ` +
        "through (its target is not looked at)";
    }
    if (![0o100000, 0o040000].includes(kind)) {
      return `hold a ghost file ${name} of unknown type (mode 0${ghost.mode.toString(8)})`;
    }
    const owner = this.#ownerFault(`a ghost file ${name}`, ghost);
    if (owner) return owner;
    if (/^\/proc(\/|$)/.test(path)) return `hold a ghost file ${name} in /proc`;
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    // criu would make it in the nearest directory that exists: this one must.
    const info = await Deno.stat(dir).catch(() => undefined);
    if (!info?.isDirectory) {
      return `hold a ghost file ${name}, inside ${dir}, which this node does not have`;
    }
    if (await this.realPath(dir) !== dir) {
      return `hold a ghost file ${name}, inside ${dir}, which is reached through a symbolic link here`;
    }
    if (!grants(fileMode(info), this.#user, Need.write | Need.search)) {
      return `hold a ghost file ${name}, inside ${dir}, which ${this.#who} may not write here`;
    }
    for (const above of directoriesAbove(`${dir}/x`)) {
      if (!await this.#search(above)) {
        return `hold a ghost file ${name}, inside ${above}, which ${this.#who} may not search here`;
      }
    }
    return undefined;
  }
}

function fileMode(info: Deno.FileInfo) {
  return { mode: info.mode ?? 0, uid: info.uid ?? -1, gid: info.gid ?? -1 };
}
