/**
 * Dependency order as data: a deterministic Kahn sort (ties broken by name)
 * that returns the cycles it finds instead of throwing, so a planner can turn
 * them into reasons that name every member.
 */
export interface Sequence {
  /** Every node whose dependencies can all be ordered, dependencies first. */
  order: string[];
  /** Each cycle as its members in dependency order, e.g. ['a', 'b', 'c'] for a→b→c→a. */
  cycles: string[][];
  /** Nodes left out of `order` because they are on or behind a cycle. */
  blocked: string[];
}

/** `dependsOn.get(n)` lists what n needs; names not in `nodes` are ignored. */
export function sequence(
  nodes: Iterable<string>,
  dependsOn: ReadonlyMap<string, readonly string[]>,
): Sequence {
  const all = [...new Set(nodes)].sort();
  const known = new Set(all);
  const needs = new Map<string, Set<string>>();
  const neededBy = new Map<string, string[]>();
  for (const node of all) {
    const deps = new Set(
      (dependsOn.get(node) ?? []).filter((dep) => known.has(dep) && dep !== node),
    );
    needs.set(node, deps);
    for (const dep of deps) neededBy.set(dep, [...(neededBy.get(dep) ?? []), node]);
  }
  const selfLoops = all.filter((node) => (dependsOn.get(node) ?? []).includes(node));

  const remaining = new Map([...needs].map(([node, deps]) => [node, deps.size]));
  const ready = all.filter((node) => remaining.get(node) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    ready.sort();
    const node = ready.shift() as string;
    order.push(node);
    for (const dependent of neededBy.get(node) ?? []) {
      const left = (remaining.get(dependent) ?? 0) - 1;
      remaining.set(dependent, left);
      if (left === 0) ready.push(dependent);
    }
  }
  const placed = new Set(order);
  const blocked = all.filter((node) => !placed.has(node));
  const cycles = findCycles(blocked, needs);
  for (const node of selfLoops) cycles.push([node]);
  const blockedAll = [...new Set([...blocked, ...selfLoops])].sort();
  return {
    order: order.filter((node) => !selfLoops.includes(node)),
    cycles: cycles.sort((a, b) => (a.join() < b.join() ? -1 : 1)),
    blocked: blockedAll,
  };
}

/** Strongly connected components of size > 1 among the blocked nodes (Tarjan), each as one cycle. */
function findCycles(nodes: string[], needs: Map<string, Set<string>>): string[][] {
  const inScope = new Set(nodes);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const result: string[][] = [];
  let counter = 0;
  const visit = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const dep of [...(needs.get(node) ?? [])].sort()) {
      if (!inScope.has(dep)) continue;
      if (!index.has(dep)) {
        visit(dep);
        low.set(node, Math.min(low.get(node) as number, low.get(dep) as number));
      } else if (onStack.has(dep)) {
        low.set(node, Math.min(low.get(node) as number, index.get(dep) as number));
      }
    }
    if (low.get(node) === index.get(node)) {
      const members: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        members.push(member);
      } while (member !== node);
      if (members.length > 1) result.push(cycleThrough(members.sort(), needs));
    }
  };
  for (const node of nodes) if (!index.has(node)) visit(node);
  return result;
}

/**
 * A real cycle inside a strongly connected set, starting at its first member
 * (breadth-first, so the shortest one), as the dependency chain a → b → … → a.
 */
function cycleThrough(members: string[], needs: Map<string, Set<string>>): string[] {
  const scope = new Set(members);
  const start = members[0] as string;
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift() as string;
    for (const dep of [...(needs.get(node) ?? [])].sort()) {
      if (!scope.has(dep)) continue;
      if (dep === start) {
        const path = [node];
        while (path[0] !== start) path.unshift(previous.get(path[0] as string) as string);
        return path;
      }
      if (!previous.has(dep)) {
        previous.set(dep, node);
        queue.push(dep);
      }
    }
  }
  return members;
}

/** "a → b → c → a": each needs the next. */
export function describeCycle(members: readonly string[]): string {
  return [...members, members[0]].join(' → ');
}
