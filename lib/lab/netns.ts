/**
 * The lab's network namespaces: the switch namespace with one bridge per network, and one
 * namespace per node with its veth interfaces, addresses and default route, so the host's own
 * namespace gets no interface, address or route. They are made and deleted with `ip -batch`, many
 * lines to one run of `ip`. Each namespace is recorded in lab.json before it is made (and its inode
 * once it is); only recorded namespaces are ever deleted, and only while they are still the ones
 * made.
 */
import { exists } from "../base/fs.ts";
import { type Lab, type LabLog, saveLab } from "./record.ts";

/** Where the host keeps named network namespaces (`ip netns`). */
export const NETNS_DIR = "/run/netns";

/**
 * Makes the namespaces of the lab (recorded first), then the bridges and veth pairs in the
 * switch namespace, then each node's addresses, links and default route (16 nodes at a time).
 */
export async function buildNamespaces(lab: Lab, log: LabLog): Promise<void> {
  const { record } = lab;
  const namespaces = [record.switchNamespace, ...record.nodes.map((n) => n.namespace)];
  // Recorded before they are made: a crash in between leaves a name down can still remove.
  for (const name of namespaces) record.made.push({ kind: "netns", name });
  await saveLab(lab);
  await ip([], namespaces.map((name) => `netns add ${name}`));
  for (const made of record.made) {
    if (made.kind === "netns") made.inode = (await Deno.stat(`${NETNS_DIR}/${made.name}`)).ino!;
  }
  await saveLab(lab);
  log(`made ${namespaces.length} network namespaces`);

  const switchLines = ["link set lo up"];
  for (const { bridge } of record.networks) {
    switchLines.push(
      `link add ${bridge} type bridge mcast_snooping 0`,
      `link set ${bridge} up`,
    );
  }
  for (const node of record.nodes) {
    for (const nic of node.nics) {
      switchLines.push(
        `link add ${nic.port} type veth peer name ${nic.name} netns ${node.namespace}`,
        `link set ${nic.port} master br${nic.net}`,
        `link set ${nic.port} up`,
      );
    }
  }
  await ip(["-n", record.switchNamespace], switchLines);
  log(`made ${record.networks.length} bridges in ${record.switchNamespace}`);

  await parallel(record.nodes, 16, (node) => {
    const lines = ["link set lo up"];
    for (const nic of node.nics) {
      lines.push(
        `address add ${nic.address}/${nic.prefix} dev ${nic.name}`,
        `link set ${nic.name} up`,
      );
    }
    lines.push(`route add default dev ${node.nics[0].name}`);
    return ip(["-n", node.namespace], lines);
  });
  log(`configured ${record.nodes.length} nodes`);
}

/**
 * Deletes the namespaces lab.json lists that are still the ones made (same inode; another of the
 * same name is left alone, and said so in `log`), and drops from the record those that are gone.
 * Returns why deleting failed, if it did; empty when all went.
 */
export async function removeNamespaces(lab: Lab, log: LabLog): Promise<string[]> {
  const { record } = lab;
  const made = record.made;
  const failures: string[] = [];
  // Only namespaces that are still the ones made (same inode) are deleted.
  const namespaces: string[] = [];
  for (const entry of made) {
    if (entry.kind !== "netns") continue;
    const inode = await inodeOf(`${NETNS_DIR}/${entry.name}`);
    if (inode === undefined) continue;
    if (entry.inode !== undefined && inode !== entry.inode) {
      log(`network namespace ${entry.name} is not the one this lab made: left alone`);
      continue;
    }
    namespaces.push(entry.name);
  }
  if (namespaces.length) {
    try {
      await ip(["-force"], namespaces.map((name) => `netns delete ${name}`));
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  const left = new Set<string>();
  for (const name of namespaces) if (await exists(`${NETNS_DIR}/${name}`)) left.add(name);
  record.made = made.filter((entry) => entry.kind !== "netns" || left.has(entry.name));
  return failures;
}

/** Runs `ip [flags] -batch -` with `lines` on its standard input. */
async function ip(flags: readonly string[], lines: readonly string[]): Promise<void> {
  const child = new Deno.Command("ip", {
    args: [...flags, "-batch", "-"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    await writer.close();
  } catch {
    // ip gave up before reading all of it (a bad namespace): its stderr says why.
  }
  const { code, stderr } = await child.output();
  if (code !== 0) {
    const why = new TextDecoder().decode(stderr).trim().split("\n").slice(0, 4).join("; ");
    throw new Error(`Cannot run "ip ${[...flags, "-batch"].join(" ")}": ${why || `exit ${code}`}`);
  }
}

/** Runs `fn` on each of `items`, at most `limit` at a time. */
async function parallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

/** The inode of `path` itself (not a link's target); undefined when there is nothing there. */
async function inodeOf(path: string): Promise<number | undefined> {
  try {
    return (await Deno.lstat(path)).ino ?? undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
