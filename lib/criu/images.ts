/**
 * CRIU's image files, read as a check before `criu restore` acts on them (lib/migration/
 * imagecheck.ts). The layouts and field numbers here are those of criu 4.1.1, the version om runs
 * (its source's `criu/include/magic.h` and `images/*.proto` at tag v4.1.1); a field not named
 * here is skipped.
 *
 * An image file is a header, then entries. The header: u32 IMG_COMMON_MAGIC (0x54564319), then
 * the u32 magic of the image's kind (MAGIC below), both little-endian; `inventory.img` has its
 * own magic alone. An entry: a u32 size (little-endian), then a protobuf message of that many
 * bytes (protobuf.ts). Some images carry raw bytes after their entry (a ghost file's contents
 * after its one entry): {@linkcode firstEntry} reads only the entry.
 */
import { decodeMessage, type ProtoMessage } from "./protobuf.ts";

/** The magic that opens every image file but the inventory. */
export const IMG_COMMON_MAGIC = 0x54564319;

/** The magic of each kind of image read here (criu/include/magic.h). */
export const MAGIC = {
  files: 0x56303138,
  ghostFile: 0x52583605,
  remapPath: 0x59133954,
  mounts: 0x55563928,
  core: 0x55053847,
  fdinfo: 0x56213732,
  fs: 0x51403912,
  mm: 0x57492820,
  memfd: 0x48453499,
  skQueues: 0x56264026,
  pipesData: 0x56453709,
  fifoData: 0x59333054,
  ttyInfo: 0x59453036,
  ids: 0x54432030,
} as const;

/** The magic of `inventory.img`, alone in its header (a service image). */
export const INVENTORY_MAGIC = 0x58313116;

/** Most entries one image may hold here (a files.img of 1024 tasks' descriptors is far less). */
export const MAX_ENTRIES = 1_000_000;

/** Most bytes one entry may hold (criu's own are at most some kilobytes; a core a few). */
export const MAX_ENTRY_BYTES = 16 * 1024 * 1024;

/** Checks the header of image `name` against `magic`; the offset of its first entry. */
function headerEnd(bytes: Uint8Array, name: string, magic: number): number {
  if (bytes.length < 8) throw new SyntaxError(`Cannot read ${name}: shorter than its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const common = view.getUint32(0, true);
  const kind = view.getUint32(4, true);
  if (common !== IMG_COMMON_MAGIC || kind !== magic) {
    throw new SyntaxError(
      `Cannot read ${name}: its magic is 0x${common.toString(16)} 0x${kind.toString(16)}, not ` +
        `0x${IMG_COMMON_MAGIC.toString(16)} 0x${magic.toString(16)}`,
    );
  }
  return 8;
}

/** The entry at `offset` of image `name`: its message bytes and the offset after it. */
function entryAt(
  bytes: Uint8Array,
  offset: number,
  name: string,
): { message: Uint8Array; next: number } {
  if (bytes.length - offset < 4) {
    throw new SyntaxError(`Cannot read ${name}: an entry's size is cut short at byte ${offset}`);
  }
  const size = new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true);
  if (size > MAX_ENTRY_BYTES) {
    throw new SyntaxError(
      `Cannot read ${name}: the entry at byte ${offset} says ${size} bytes, more than ` +
        `${MAX_ENTRY_BYTES}`,
    );
  }
  if (size > bytes.length - offset - 4) {
    throw new SyntaxError(
      `Cannot read ${name}: the entry at byte ${offset} says ${size} bytes, ` +
        `${bytes.length - offset - 4} left`,
    );
  }
  return { message: bytes.subarray(offset + 4, offset + 4 + size), next: offset + 4 + size };
}

/** Every entry of image `name` (its bytes, `magic` its kind), decoded as messages. */
export function imageEntries(bytes: Uint8Array, name: string, magic: number): ProtoMessage[] {
  const entries: ProtoMessage[] = [];
  let offset = headerEnd(bytes, name, magic);
  while (offset < bytes.length) {
    if (entries.length >= MAX_ENTRIES) {
      throw new SyntaxError(`Cannot read ${name}: more than ${MAX_ENTRIES} entries`);
    }
    const entry = entryAt(bytes, offset, name);
    entries.push(decodeMessage(entry.message, { what: `${name} entry ${entries.length}` }));
    offset = entry.next;
  }
  return entries;
}

/**
 * Every entry of image `name` whose entries are each followed by raw bytes, as many as the
 * entry's field `lengthField` says (sk-queues.img: a queued packet; pipes-data.img, fifo-data.img:
 * a pipe's contents); the raw bytes are skipped.
 */
export function dataEntries(
  bytes: Uint8Array,
  name: string,
  magic: number,
  lengthField: number,
): ProtoMessage[] {
  const entries: ProtoMessage[] = [];
  let offset = headerEnd(bytes, name, magic);
  while (offset < bytes.length) {
    if (entries.length >= MAX_ENTRIES) {
      throw new SyntaxError(`Cannot read ${name}: more than ${MAX_ENTRIES} entries`);
    }
    const entry = entryAt(bytes, offset, name);
    const message = decodeMessage(entry.message, { what: `${name} entry ${entries.length}` });
    const length = required(message.uint32(lengthField), message, `field ${lengthField}`);
    if (length > bytes.length - entry.next) {
      throw new SyntaxError(
        `Cannot read ${name}: entry ${entries.length} says ${length} bytes follow, ` +
          `${bytes.length - entry.next} left`,
      );
    }
    entries.push(message);
    offset = entry.next + length;
  }
  return entries;
}

/** The one entry of `inventory.img` (its header is INVENTORY_MAGIC alone). */
export function inventoryEntry(bytes: Uint8Array): ProtoMessage {
  const name = "inventory.img";
  if (bytes.length < 4) throw new SyntaxError(`Cannot read ${name}: shorter than its header`);
  const magic = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  if (magic !== INVENTORY_MAGIC) {
    throw new SyntaxError(
      `Cannot read ${name}: its magic is 0x${magic.toString(16)}, not 0x${
        INVENTORY_MAGIC.toString(16)
      }`,
    );
  }
  const entry = entryAt(bytes, 4, name);
  if (entry.next !== bytes.length) {
    throw new SyntaxError(
      `Cannot read ${name}: ${bytes.length - entry.next} bytes after its entry`,
    );
  }
  return decodeMessage(entry.message, { what: `${name} entry 0` });
}

/** The first entry of image `name`, which raw bytes may follow (a ghost file's contents). */
export function firstEntry(bytes: Uint8Array, name: string, magic: number): ProtoMessage {
  const entry = entryAt(bytes, headerEnd(bytes, name, magic), name);
  return decodeMessage(entry.message, { what: `${name} entry 0` });
}

/** Bytes enough to hold an image's header and first entry, for {@linkcode firstEntry}. */
export const FIRST_ENTRY_BYTES = 12 + 64 * 1024;

/** A descriptor's kind in files.img (fdinfo.proto `fd_types`), the ones om's checks name. */
export const FdType = {
  reg: 1,
  pipe: 2,
  fifo: 3,
  inetSocket: 4,
  unixSocket: 5,
  eventfd: 6,
  eventpoll: 7,
  inotify: 8,
  signalfd: 9,
  packetSocket: 10,
  tty: 11,
  fanotify: 12,
  netlinkSocket: 13,
  namespace: 14,
  tun: 15,
  external: 16,
  timerfd: 17,
  memfd: 18,
  bpfMap: 19,
  pidfd: 20,
} as const;

/**
 * For each descriptor kind, the field of file_entry (fdinfo.proto) holding its entry and that
 * entry's `fown` field (fown.proto), where it has one.
 */
export const FILE_ENTRY_FIELDS: Readonly<Record<number, { field: number; fown?: number }>> = {
  [FdType.reg]: { field: 3, fown: 5 },
  [FdType.inetSocket]: { field: 4, fown: 13 },
  [FdType.namespace]: { field: 5 },
  [FdType.packetSocket]: { field: 6, fown: 6 },
  [FdType.netlinkSocket]: { field: 7, fown: 11 },
  [FdType.eventfd]: { field: 8, fown: 3 },
  [FdType.eventpoll]: { field: 9, fown: 3 },
  [FdType.signalfd]: { field: 10, fown: 3 },
  [FdType.tun]: { field: 11 },
  [FdType.timerfd]: { field: 12, fown: 3 },
  [FdType.inotify]: { field: 13, fown: 4 },
  [FdType.fanotify]: { field: 14, fown: 3 },
  [FdType.external]: { field: 15, fown: 5 },
  [FdType.unixSocket]: { field: 16, fown: 9 },
  [FdType.fifo]: { field: 17 },
  [FdType.pipe]: { field: 18, fown: 4 },
  [FdType.tty]: { field: 19, fown: 4 },
  [FdType.memfd]: { field: 20, fown: 4 },
  [FdType.bpfMap]: { field: 21, fown: 4 },
  [FdType.pidfd]: { field: 22, fown: 5 },
};

/** Who gets a file's signals (fown.proto): set with F_SETOWN_EX as `uid`/`euid` when `pid`. */
export interface FileOwner {
  readonly uid: number;
  readonly euid: number;
  readonly signum: number;
  readonly pid: number;
}

/** A regular file a task holds (regfile.proto reg_file_entry). */
export interface RegFile {
  readonly id: number;
  /** The open(2) flags criu opens it with. */
  readonly flags: number;
  /** Its path in the job's mount namespace, from its root. */
  readonly name: string;
  readonly mntId: number;
  /** Whether it is an external file (`--inherit-fd`). */
  readonly ext: boolean;
}

/** A unix socket (sk-unix.proto unix_sk_entry). */
export interface UnixSocket {
  readonly id: number;
  /** Its bound name: empty when unnamed, a NUL first when abstract, else a path. */
  readonly name: Uint8Array;
  /** The directory a relative name is in, if any. */
  readonly nameDir?: string;
}

/** An inet socket (sk-inet.proto inet_sk_entry), what a check needs of it. */
export interface InetSocket {
  readonly id: number;
  readonly type: number;
  readonly proto: number;
  readonly srcPort: number;
}

/** One entry of files.img (fdinfo.proto file_entry): a descriptor's kind and, for some, more. */
export interface FileEntry {
  readonly type: number;
  readonly id: number;
  readonly fown?: FileOwner;
  readonly reg?: RegFile;
  readonly unix?: UnixSocket;
  readonly inet?: InetSocket;
}

function required<T>(value: T | undefined, message: ProtoMessage, field: string): T {
  if (value === undefined) {
    throw new SyntaxError(`Cannot read ${message.what}: its ${field} is missing`);
  }
  return value;
}

function fileOwner(message: ProtoMessage): FileOwner {
  return {
    uid: message.uint32(1) ?? 0,
    euid: message.uint32(2) ?? 0,
    signum: message.uint32(3) ?? 0,
    pid: message.uint32(5) ?? 0,
  };
}

/** Decodes a files.img entry: its kind, id, owner and, for regular files and sockets, more. */
export function fileEntry(message: ProtoMessage): FileEntry {
  const type = required(message.uint32(1), message, "type");
  const id = required(message.uint32(2), message, "id");
  const known = FILE_ENTRY_FIELDS[type];
  // A kind's entry in another kind's field would be read by criu as that one: one field only.
  for (const n of Object.values(FILE_ENTRY_FIELDS).map((kind) => kind.field)) {
    if (n !== known?.field && message.has(n)) {
      throw new SyntaxError(`Cannot read ${message.what}: a type ${type} file with field ${n}`);
    }
  }
  if (!known) return { type, id };
  const inner = message.message(known.field, `type ${type} entry`);
  if (!inner) return { type, id };
  const fownMessage = known.fown === undefined ? undefined : inner.message(known.fown, "fown");
  const fown = fownMessage ? fileOwner(fownMessage) : undefined;
  if (type === FdType.reg) {
    const mntId = inner.sint32(7);
    return {
      type,
      id,
      fown,
      reg: {
        id: required(inner.uint32(1), inner, "id"),
        flags: required(inner.uint32(2), inner, "flags"),
        name: required(inner.string(6), inner, "name"),
        mntId: mntId ?? -1,
        ext: inner.bool(9) ?? false,
      },
    };
  }
  if (type === FdType.unixSocket) {
    return {
      type,
      id,
      fown,
      unix: {
        id: required(inner.uint32(1), inner, "id"),
        name: required(inner.bytes(11), inner, "name"),
        nameDir: inner.string(14),
      },
    };
  }
  if (type === FdType.inetSocket) {
    return {
      type,
      id,
      fown,
      inet: {
        id: required(inner.uint32(1), inner, "id"),
        type: required(inner.uint32(4), inner, "type"),
        proto: required(inner.uint32(5), inner, "proto"),
        srcPort: required(inner.uint32(7), inner, "src_port"),
      },
    };
  }
  return { type, id, fown };
}

/** A deleted file's copy that criu makes at restore (ghost-file.proto ghost_file_entry). */
export interface GhostFile {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly rdev?: number;
  readonly symlinkTarget?: string;
}

/** Decodes the entry of a ghost-file-N.img. */
export function ghostFile(message: ProtoMessage): GhostFile {
  return {
    uid: required(message.uint32(1), message, "uid"),
    gid: required(message.uint32(2), message, "gid"),
    mode: required(message.uint32(3), message, "mode"),
    rdev: message.uint32(6),
    symlinkTarget: message.string(11),
  };
}

/** remap-file-path.proto remap_type. */
export const RemapType = { linked: 0, ghost: 1, procfs: 2 } as const;

/** Old images mark a ghost remap by this bit of remap_id instead of remap_type (criu reads both). */
export const REMAP_GHOST_BIT = 0x80000000;

/** How criu finds a file that was deleted (remap-file-path.proto remap_file_path_entry). */
export interface RemapPath {
  readonly origId: number;
  readonly remapId: number;
  readonly type: number;
}

/** Decodes a remap-fpath.img entry, reading an old image's ghost bit as criu does. */
export function remapPath(message: ProtoMessage): RemapPath {
  const origId = required(message.uint32(1), message, "orig_id");
  const remapId = required(message.uint32(2), message, "remap_id");
  const type = message.uint32(3);
  if (type !== undefined) return { origId, remapId, type };
  return (remapId & REMAP_GHOST_BIT) !== 0
    ? { origId, remapId: (remapId & ~REMAP_GHOST_BIT) >>> 0, type: RemapType.ghost }
    : { origId, remapId, type: RemapType.linked };
}

/** mnt.proto `fstype`, by number, as the names /proc/self/mountinfo gives them. */
export const FSTYPE_NAMES: Readonly<Record<number, string>> = {
  1: "proc",
  2: "sysfs",
  3: "devtmpfs",
  4: "binfmt_misc",
  5: "tmpfs",
  6: "devpts",
  8: "pstore",
  9: "securityfs",
  10: "fusectl",
  11: "debugfs",
  12: "cgroup",
  13: "aufs",
  14: "mqueue",
  15: "fuse",
  17: "overlay",
  18: "autofs",
  19: "tracefs",
  23: "cgroup2",
};

/** mnt.proto: UNSUPPORTED (a file system criu knows no more of: ext4, xfs...), PROC, AUTO. */
export const Fstype = { unsupported: 0, proc: 1, auto: 16 } as const;

/** The external key criu gives a mount it found was a copy of its own (`--external mnt[]`). */
export const AUTODETECTED_MOUNT = "CRIU:AUTOGENERATED";

/** A mount of the job's mount namespace (mnt.proto mnt_entry). */
export interface MountEntry {
  readonly fstype: number;
  readonly mntId: number;
  /** The device of its file system, as the kernel packs it (major << 20 | minor). */
  readonly rootDev: number;
  readonly parentMntId: number;
  /** MS_* flags of the mount. */
  readonly flags: number;
  readonly root: string;
  readonly mountpoint: string;
  readonly source: string;
  readonly options: string;
  readonly sharedId: number;
  readonly masterId: number;
  readonly withPlugin: boolean;
  readonly extMount: boolean;
  readonly fsname?: string;
  readonly internalSharing: boolean;
  readonly deleted: boolean;
  readonly sbFlags?: number;
  readonly extKey?: string;
}

/** Decodes a mountpoints-N.img entry. */
export function mountEntry(message: ProtoMessage): MountEntry {
  return {
    fstype: required(message.uint32(1), message, "fstype"),
    mntId: required(message.uint32(2), message, "mnt_id"),
    rootDev: required(message.uint32(3), message, "root_dev"),
    parentMntId: required(message.uint32(4), message, "parent_mnt_id"),
    flags: required(message.uint32(5), message, "flags"),
    root: required(message.string(6), message, "root"),
    mountpoint: required(message.string(7), message, "mountpoint"),
    source: required(message.string(8), message, "source"),
    options: required(message.string(9), message, "options"),
    sharedId: message.uint32(10) ?? 0,
    masterId: message.uint32(11) ?? 0,
    withPlugin: message.bool(12) ?? false,
    extMount: message.bool(13) ?? false,
    fsname: message.string(14),
    internalSharing: message.bool(15) ?? false,
    deleted: message.bool(16) ?? false,
    sbFlags: message.uint32(17),
    extKey: message.string(18),
  };
}

/** A resource limit (rlimit.proto rlimit_entry); RLIM_INFINITY is 2^64 - 1. */
export interface Rlimit {
  readonly cur: bigint;
  readonly max: bigint;
}

/** What a check needs of one task's or thread's core-N.img (core.proto core_entry). */
export interface TaskCore {
  /** thread_core: its scheduling (policy, priority, nice). */
  readonly sched: { readonly policy?: number; readonly prio?: number; readonly nice?: number };
  /** tc (a process's first thread only): its resource limits, by resource number. */
  readonly rlimits?: readonly Rlimit[];
  readonly loginuid?: number;
  readonly oomScoreAdj?: number;
  /** thread_core's creds: the security module's label and socket label, AppArmor policy data. */
  readonly lsm?: {
    readonly profile?: string;
    readonly sockcreate?: string;
    readonly apparmorData: boolean;
  };
}

/**
 * Decodes the entry of a core-N.img (core_entry: tc = 3, thread_core = 5; thread_core's creds =
 * 10, creds.proto creds_entry).
 */
export function taskCore(message: ProtoMessage): TaskCore {
  const thread = message.message(5, "thread_core");
  const tc = message.message(3, "tc");
  const limits = tc?.message(8, "rlimits");
  const creds = thread?.message(10, "creds");
  return {
    sched: {
      policy: thread?.uint32(4),
      prio: thread?.uint32(5),
      nice: thread?.sint32(3),
    },
    rlimits: limits?.messages(1, "rlimit").map((limit) => ({
      cur: required(limit.uint64(1), limit, "cur"),
      max: required(limit.uint64(2), limit, "max"),
    })),
    loginuid: tc?.uint32(13),
    oomScoreAdj: tc?.int32(14),
    lsm: {
      profile: creds?.string(15),
      sockcreate: creds?.string(16),
      apparmorData: creds?.has(17) ?? false,
    },
  };
}

/** A descriptor of a task (fdinfo.proto fdinfo_entry): which file (files.img id) of which kind. */
export interface Descriptor {
  readonly id: number;
  readonly type: number;
  readonly fd: number;
}

/** Decodes an fdinfo-N.img entry. */
export function descriptor(message: ProtoMessage): Descriptor {
  return {
    id: required(message.uint32(1), message, "id"),
    type: required(message.uint32(3), message, "type"),
    fd: required(message.uint32(4), message, "fd"),
  };
}

/** A task's working and root directories (fs.proto fs_entry), as files.img ids. */
export interface TaskDirs {
  readonly cwdId: number;
  readonly rootId: number;
}

/** Decodes an fs-N.img entry. */
export function taskDirs(message: ProtoMessage): TaskDirs {
  return {
    cwdId: required(message.uint32(1), message, "cwd_id"),
    rootId: required(message.uint32(2), message, "root_id"),
  };
}

/** A vma's status bits (criu/include/image.h VMA_*) that om's checks name. */
export const VmaStatus = {
  filePrivate: 1 << 6,
  fileShared: 1 << 7,
  sysvipc: 1 << 10,
  socket: 1 << 11,
  aioRing: 1 << 13,
  memfd: 1 << 14,
  extPlugin: 1 << 27,
} as const;

/** A mapping of a task (vma.proto vma_entry), what a check needs of it. */
export interface Mapping {
  readonly start: bigint;
  /** Its mmap(2) flags (MAP_*), as criu maps it again. */
  readonly flags: number;
  /** For a file mapping, the files.img id of its file; for a SysV one, the segment's id. */
  readonly shmid: bigint;
  readonly status: number;
  /** The open(2) flags criu opens a mapped file with. */
  readonly fdflags?: number;
}

/** A task's memory layout (mm.proto mm_entry), what a check needs of it. */
export interface TaskMemory {
  readonly exeFileId: number;
  readonly mappings: readonly Mapping[];
}

/** Decodes an mm-N.img entry. */
export function taskMemory(message: ProtoMessage): TaskMemory {
  return {
    exeFileId: required(message.uint32(12), message, "exe_file_id"),
    mappings: message.messages(14, "vma").map((vma) => ({
      start: required(vma.uint64(1), vma, "start"),
      flags: required(vma.uint32(6), vma, "flags"),
      shmid: required(vma.uint64(4), vma, "shmid"),
      status: required(vma.uint32(7), vma, "status"),
      fdflags: vma.uint32(10),
    })),
  };
}

/** A memfd's file, which criu makes and gives its owner and mode (memfd.proto memfd_inode_entry). */
export interface MemfdInode {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode?: number;
}

/** Decodes a memfd.img entry. */
export function memfdInode(message: ProtoMessage): MemfdInode {
  return {
    name: required(message.string(1), message, "name"),
    uid: required(message.uint32(2), message, "uid"),
    gid: required(message.uint32(3), message, "gid"),
    mode: message.uint32(9),
  };
}
