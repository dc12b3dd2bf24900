import assert from "node:assert/strict";
import { nextSteps, statusPage } from "../../commands/lab.ts";
import type { Lab, LabNode } from "../../lib/lab/record.ts";

const node = (index: number): LabNode => ({
  index,
  namespace: `omlab-${index}`,
  nics: [{ name: "eth0", net: 0, address: `10.77.0.${index}`, prefix: 24, port: `n${index}e0` }],
  dir: `/run/om-lab/omlab/node${index}`,
  root: `/run/om-lab/omlab/node${index}/root`,
  config: `/run/om-lab/omlab/node${index}/om.conf`,
  cgroups: {},
  discoverArgs: [],
});

const lab = (nodes: number, criu?: string): Lab => ({
  record: {
    version: 1,
    name: "omlab",
    dir: "/run/om-lab/omlab",
    created: "2026-01-01T00:00:00.000Z",
    switchNamespace: "omlab-sw",
    networks: [{ net: 0, bridge: "br0" }],
    key: "/run/om-lab/omlab/cluster.key",
    ...(criu ? { criu } : {}),
    nodes: Array.from({ length: nodes }, (_, i) => node(i + 1)),
    made: [],
  },
  children: new Map(),
});

Deno.test("lab up's next steps: a job, a move to node 2, om stress", () => {
  assert.equal(
    nextSteps(lab(3, "/opt/criu"), "./om"),
    "\nTry next:\n" +
      "  ./om lab exec 1 -- ./om run -- sh -c 'echo job $OM_JOB; i=0; while sleep 1; do " +
      "i=$((i+1)); echo $i; done'\n" +
      "      a job on node 1: it prints its PID, then counts (Ctrl-C ends it)\n" +
      "  ./om lab exec 1 -- ./om migrate PID 2\n" +
      "      from another terminal: moves it to node 2, counting on (./om lab exec 1 -- ./om ps " +
      "lists it)\n" +
      "  ./om lab exec 1 -- ./om stress\n" +
      "      the stress test: jobs that move between the nodes and must compute the right answer\n",
  );
});

Deno.test("lab up's next steps without CRIU, or with one node, offer no move", () => {
  const none = nextSteps(lab(3), "/usr/local/bin/om");
  assert.doesNotMatch(none, /migrate|stress/);
  assert.match(none, /^ {2}\/usr\/local\/bin\/om lab exec 1 -- \/usr\/local\/bin\/om run -- /m);
  assert.match(none, /\(no CRIU for the nodes, said above: jobs run, but do not move\)\n$/);
  const one = nextSteps(lab(1, "/opt/criu"), "om");
  assert.doesNotMatch(one, /migrate/);
  assert.match(one, /om lab exec 1 -- om stress\n/);
});

Deno.test("lab up says where node 1's status page is, and how to look at it from the host", () => {
  const served: Lab = { ...lab(2), record: { ...lab(2).record, http: 20380 } };
  assert.equal(
    statusPage(served, "./om"),
    "status page: http://10.77.0.1:20380/ (every node serves one on its address, port 20380)\n" +
      "  from inside the lab: ./om lab exec 1 -- curl -s http://10.77.0.1:20380/api/nodes\n" +
      "  as a file to open anywhere: ./om lab exec 1 -- ./om status --html /tmp/cluster.html\n",
  );
  assert.equal(statusPage(lab(2), "./om"), "", "a lab without pages says nothing");
});
